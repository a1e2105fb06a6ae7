package msgauth

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"net/mail"
	"strings"
	"sync"

	"golang.org/x/net/idna"
)

// maxHeader is the most header read to find From: and the fields to sign; a header section
// longer than this is treated as having no usable From:.
const maxHeader = 1 << 20

var errHeaderTooLong = errors.New("header section over 1 MiB")

// readers are the buffered readers of Verify and Sign, reused: a 32 KiB buffer per message was
// most of what the MX allocated per message.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// getReader returns a pooled reader of r; give it back with putReader once nothing refers to it.
func getReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}

// field is one header field: its name in lower case and its unfolded value.
type field struct {
	name  string
	value string
}

// readHeader reads the header section of a message from br: the raw bytes (blank line
// included, when there is one) and the parsed fields. complete is false for a message that
// ends inside its header (no blank line), which DKIM cannot sign or verify.
func readHeader(br *bufio.Reader) (raw []byte, fields []field, complete bool, err error) {
	for {
		start := len(raw)
		line, err := br.ReadSlice('\n')
		raw = append(raw, line...)
		for err == bufio.ErrBufferFull {
			line, err = br.ReadSlice('\n')
			raw = append(raw, line...)
		}
		if len(raw) > maxHeader {
			return raw, fields, false, errHeaderTooLong
		}
		if err == io.EOF {
			return raw, fields, false, nil
		}
		if err != nil {
			return raw, fields, false, err
		}
		line = raw[start:]
		if bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) {
			return raw, fields, true, nil
		}
		text := strings.TrimRight(string(line), "\r\n")
		if text == "" {
			continue
		}
		if text[0] == ' ' || text[0] == '\t' {
			if len(fields) > 0 { // RFC 5322 2.2.3: unfolding removes the CRLF only
				fields[len(fields)-1].value += text
			}
			continue
		}
		name, value, ok := strings.Cut(text, ":")
		if !ok {
			continue // not a header field; RFC 5322 has none such, ignore it
		}
		fields = append(fields, field{name: strings.ToLower(strings.TrimRight(name, " \t")), value: value})
	}
}

// fromDomains returns the distinct domains (lower case) of every address in every From: field
// (RFC 5322 3.6.2). RFC 7489 6.6.1 leaves messages with several From: domains to the receiver;
// we evaluate DMARC for each, so an extra From: line cannot hide a forged one.
func fromDomains(fields []field) []string {
	var out []string
	add := func(d string) {
		d = asciiDomain(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" {
			return
		}
		for _, o := range out {
			if o == d {
				return
			}
		}
		out = append(out, d)
	}
	parser := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		// Display names in unknown charsets do not matter here, only the addresses.
		CharsetReader: func(_ string, input io.Reader) (io.Reader, error) { return input, nil },
	}}
	for _, f := range fields {
		if f.name != "from" {
			continue
		}
		addrs, err := parser.ParseList(f.value)
		if err == nil && len(addrs) > 0 {
			for _, a := range addrs {
				if at := strings.LastIndexByte(a.Address, '@'); at >= 0 {
					add(a.Address[at+1:])
				}
			}
			continue
		}
		// A From: net/mail cannot parse may still be shown to the user as an address: take the
		// domain after the last '@', as a mail client would display it.
		add(lastDomain(f.value))
	}
	return out
}

// lastDomain is the run of domain characters after the last '@' in s, or "".
func lastDomain(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return ""
	}
	s = s[at+1:]
	end := 0
	for end < len(s) && isDomainChar(s[end]) {
		end++
	}
	return s[:end]
}

func isDomainChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c >= 0x80
}

// count is how many fields named name (lower case) the header has.
func count(fields []field, name string) int {
	n := 0
	for _, f := range fields {
		if f.name == name {
			n++
		}
	}
	return n
}

// asciiDomain is domain in lower case with any U-labels turned into A-labels (RFC 5890), the
// form DNS lookups and DKIM d= use; a name IDNA refuses is returned lower-cased as it is.
func asciiDomain(domain string) string {
	domain = strings.ToLower(domain)
	for i := 0; i < len(domain); i++ {
		if domain[i] >= 0x80 {
			if a, err := idna.Lookup.ToASCII(domain); err == nil {
				return a
			}
			return domain
		}
	}
	return domain
}
