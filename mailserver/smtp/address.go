package smtp

import (
	"net"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// RFC 5321 4.5.3.1.1-3: size limits of the parts of an address.
const (
	maxLocalPart = 64
	maxDomain    = 255
	maxPath      = 254 // 256 octets of path minus the angle brackets
)

// address is an envelope address that passed checkAddress.
type address struct {
	raw    string // as the client sent it, quotes removed by go-smtp
	local  string // lower case
	domain string // lower case, A-labels (IDNA) so it compares with config domains
}

// String is the address for lookups: local@domain, lower case.
func (a address) String() string { return a.local + "@" + a.domain }

// parseAddress checks an envelope address from go-smtp's parser, which has already removed any
// quoting of the local part and any source route (RFC 5321 4.1.1.3 and appendix C: a route is
// ignored, the mail goes to the final mailbox). It returns errBadSender/errBadRecipient shaped
// replies through bad, or errNeedUTF8 for non-ASCII without SMTPUTF8 (RFC 6531 3.5).
func parseAddress(raw string, utf8Allowed bool, bad error) (address, error) {
	if len(raw) > maxPath {
		return address{}, bad
	}
	at := strings.LastIndexByte(raw, '@')
	if at <= 0 || at == len(raw)-1 {
		return address{}, bad
	}
	local, domain := raw[:at], raw[at+1:]
	if len(local) > maxLocalPart || len(domain) > maxDomain {
		return address{}, bad
	}
	ascii := true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c < 0x20 || c == 0x7f:
			// No control characters anywhere: they could end up in a header (Received: for).
			return address{}, bad
		case c >= 0x80:
			ascii = false
		}
	}
	if !ascii {
		if !utf8Allowed {
			return address{}, errNeedUTF8
		}
		if !utf8.ValidString(raw) {
			return address{}, bad
		}
	}
	domain, ok := checkDomain(domain)
	if !ok {
		return address{}, bad
	}
	return address{raw: raw, local: strings.ToLower(local), domain: domain}, nil
}

// checkDomain validates a Domain or address-literal (RFC 5321 4.1.2, 4.1.3) and returns it in
// lower case with U-labels turned into A-labels (RFC 6531 3.2).
func checkDomain(d string) (string, bool) {
	if strings.HasPrefix(d, "[") {
		if !strings.HasSuffix(d, "]") {
			return "", false
		}
		lit := d[1 : len(d)-1]
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			ip, err := netip.ParseAddr(v6)
			return d, err == nil && ip.Is6()
		}
		ip, err := netip.ParseAddr(lit)
		return d, err == nil && ip.Is4()
	}
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			a, err := idna.Lookup.ToASCII(d)
			if err != nil {
				return "", false
			}
			d = a
			break
		}
	}
	d = strings.ToLower(d)
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", false
			}
		}
	}
	return d, true
}

// relayTrick names the classic way of asking a server to relay through the local part of an
// address in one of our domains, or returns "" if there is none:
//   - the percent hack "user%elsewhere@ours" (RFC 1123 5.2.16),
//   - a UUCP bang path "elsewhere!user@ours",
//   - an '@' in a quoted local part, "\"user@elsewhere\"@ours".
//
// Such local parts never name one of our mailboxes, so they are refused as relaying (554 5.7.1,
// as Postfix does after rewriting them) rather than as unknown users.
func relayTrick(local string) string {
	switch {
	case strings.ContainsRune(local, '%'):
		return "percent hack"
	case strings.ContainsRune(local, '!'):
		return "bang path"
	case strings.ContainsRune(local, '@'):
		return "quoted local part with @"
	}
	return ""
}

// clientIP is the address of a connection's client, or the zero Addr.
func clientIP(addr net.Addr) netip.Addr {
	if addr == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
