package autoreply

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kubemail/kubemail/mailserver/config"
)

// maxReferences bounds the References field carried over from the original.
const maxReferences = 2000

// buildReply writes the reply from mailbox to sender (see the package doc, The reply).
func buildReply(mailbox, sender string, ar *config.AutoReply, orig textproto.MIMEHeader, now time.Time, hostname string) []byte {
	var b bytes.Buffer
	field := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	field("Date", now.Format(time.RFC1123Z))
	field("From", "<"+mailbox+">")
	field("To", "<"+sender+">")
	field("Subject", encodeSubject(subject(ar, orig)))
	field("Message-ID", "<"+randomID()+"@"+hostname+">")
	if id := oneLine(orig.Get("Message-Id")); id != "" && len(id) < maxReferences {
		// RFC 3834 3.1.4, RFC 5322 3.6.4.
		field("In-Reply-To", id)
		refs := oneLine(orig.Get("References"))
		if refs == "" || len(refs)+len(id) > maxReferences {
			refs = id
		} else {
			refs += " " + id
		}
		field("References", foldWords(refs))
	}
	field("Auto-Submitted", "auto-replied") // RFC 3834 5
	field("X-Auto-Response-Suppress", "All")
	field("MIME-Version", "1.0")
	field("Content-Type", "text/plain; charset=utf-8")
	field("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(ar.Body, "\r\n", "\n")
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	qp.Write([]byte(body)) // writes into a bytes.Buffer: no error
	qp.Close()
	return b.Bytes()
}

// subject is the configured one, or "Auto: " and the original's (decoded, one line, at most
// config.MaxAutoReplySubject characters of it), RFC 3834 3.1.5.
func subject(ar *config.AutoReply, orig textproto.MIMEHeader) string {
	if ar.Subject != "" {
		return ar.Subject
	}
	s := oneLine(orig.Get("Subject"))
	if dec, err := new(mime.WordDecoder).DecodeHeader(s); err == nil && utf8.ValidString(dec) {
		s = oneLine(dec)
	}
	if r := []rune(s); len(r) > config.MaxAutoReplySubject {
		s = string(r[:config.MaxAutoReplySubject])
	}
	if s == "" {
		return "Auto: (no subject)"
	}
	return "Auto: " + s
}

// encodeSubject makes s an ASCII field value (RFC 2047 encoded words, folded between words).
func encodeSubject(s string) string {
	enc := mime.BEncoding.Encode("utf-8", s)
	if enc == s {
		return s
	}
	return strings.ReplaceAll(enc, " =?", "\r\n =?")
}

// foldWords folds a long list of message IDs between them.
func foldWords(s string) string {
	words := strings.Fields(s)
	var b strings.Builder
	line := 0
	for i, w := range words {
		if i > 0 {
			if line+1+len(w) > 76 {
				b.WriteString("\r\n")
				line = 0
			}
			b.WriteString(" ")
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

// oneLine unfolds a field value and drops control characters, so nothing from the original
// can add a field to the reply.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
