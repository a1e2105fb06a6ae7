package smtp

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/kubemail/kubemail/mailserver/config"
)

// receivedHeader is the trace field prepended to every message (RFC 5321 4.4), laid out as
// Postfix does so that log readers and spam filters find what they expect:
//
//	Received: from client.example ([192.0.2.1])
//		(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)
//		by mx.example.test (kubemail) with ESMTPS id 3F2A9C1B00000001
//		for <alice@example.test>; Mon, 02 Jan 2006 15:04:05 +0000
//
// "for" is given only with a single recipient, so a copy does not reveal the other (Bcc)
// recipients (RFC 5321 7.2). The protocol is named as RFC 3848 and RFC 6531 4.3 register it.
// No reverse DNS lookup is made: it would put a resolver on the path of every connection.
func (s *session) receivedHeader(tx *transaction, user *config.Mailbox) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "Received: from "...)
	b = append(b, heloName(tx.helo)...)
	b = append(b, " ("...)
	b = append(b, addressLiteral(s.remote)...)
	b = append(b, ')')
	if s.tls != nil {
		b = append(b, "\r\n\t(using "...)
		// "TLSv1.3" as Postfix and OpenSSL write it, not Go's "TLS 1.3".
		b = append(b, strings.Replace(tls.VersionName(s.tls.Version), "TLS ", "TLSv", 1)...)
		b = append(b, " with cipher "...)
		b = append(b, tls.CipherSuiteName(s.tls.CipherSuite)...)
		b = append(b, ')')
	}
	if user != nil {
		b = append(b, "\r\n\t(Authenticated sender: "...)
		b = append(b, user.Address...)
		b = append(b, ')')
	}
	b = append(b, "\r\n\tby "...)
	b = append(b, s.b.opts.Hostname...)
	b = append(b, " (kubemail) with "...)
	b = append(b, protocolName(tx.utf8, s.tls != nil, user != nil)...)
	b = append(b, " id "...)
	b = append(b, tx.id...)
	if len(tx.rcpts) == 1 {
		b = append(b, "\r\n\tfor <"...)
		b = append(b, quoteAddress(tx.rcpts[0])...)
		b = append(b, '>')
	}
	b = append(b, "; "...)
	b = time.Now().AppendFormat(b, time.RFC1123Z) // RFC 5322 3.3 date-time
	b = append(b, "\r\n"...)
	return b
}

// protocolName is the "with" keyword: ESMTP, plus S for TLS and A for AUTH (RFC 3848), or the
// UTF8SMTP forms when the client used SMTPUTF8 (RFC 6531 4.3).
func protocolName(utf8, tls, auth bool) string {
	p := "ESMTP"
	if utf8 {
		p = "UTF8SMTP"
	}
	if tls {
		p += "S"
	}
	if auth {
		p += "A"
	}
	return p
}

// heloName is the client's EHLO argument, made safe to put in a header: anything that is not a
// domain or address-literal character becomes '_'.
func heloName(helo string) string {
	if helo == "" {
		return "unknown"
	}
	if len(helo) > maxDomain {
		helo = helo[:maxDomain]
	}
	ok := true
	for i := 0; i < len(helo) && ok; i++ {
		ok = isHeloChar(helo[i])
	}
	if ok {
		return helo
	}
	b := []byte(helo)
	for i, c := range b {
		if !isHeloChar(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func isHeloChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']'
}

// addressLiteral is the client's IP as an RFC 5321 4.1.3 address-literal.
func addressLiteral(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "[unknown]"
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		return "[IPv6:" + ip.WithZone("").String() + "]"
	}
	return "[" + ip.String() + "]"
}

// quoteAddress restores the quoting of a local part that go-smtp removed, when the local part
// is not a dot-atom (RFC 5321 4.1.2), so the "for" clause stays well-formed.
func quoteAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	local := addr[:at]
	if isDotAtom(local) {
		return addr
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if local[i] == '"' || local[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	b.WriteString(addr[at:])
	return b.String()
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 { // UTF-8 atext (RFC 6531 3.3)
			continue
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0) {
			return false
		}
	}
	return true
}
