package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// smtpSendResult is what testdata/smtp_send.py prints.
type smtpSendResult struct {
	OK    bool              `json:"ok"`
	Code  int               `json:"code"`
	Error string            `json:"error"`
	ESMTP map[string]string `json:"esmtp"`
}

// smtpSend sends a raw message with Python smtplib through the MX, after STARTTLS.
func (s *server) smtpSend(t *testing.T, to string, message []byte, smtputf8 bool) smtpSendResult {
	t.Helper()
	python := requireTool(t, "python3")
	host, port := s.hostPort("smtp")
	file := filepath.Join(t.TempDir(), "message.eml")
	writeFile(t, file, string(message))
	args := []string{filepath.Join(repoRoot, "test", "e2e", "testdata", "smtp_send.py"),
		host, port, s.cert.certFile, "sender@remote.test", to, file}
	if smtputf8 {
		args = append(args, "SMTPUTF8")
	}
	out, code := runClient(t, python, args...)
	if code != 0 {
		t.Fatalf("smtp_send.py exited %d; output:\n%s", code, out)
	}
	var r smtpSendResult
	decodeJSON(t, out, &r)
	return r
}

// A message with UTF-8 headers (SMTPUTF8, RFC 6531) and an 8-bit body (8BITMIME, RFC 6152)
// reaches the INBOX byte for byte, behind the trace headers; EHLO after STARTTLS advertises what
// the issue lists.
func TestUTF8HeadersAnd8BitBodyKeptByteForByte(t *testing.T) {
	srv := newSamplesServer(t)
	message := []byte("From: Zoë Ålund <zoe@remote.test>\r\n" +
		"To: Alice <alice@example.test>\r\n" +
		"Subject: Grüße aus Köln — 日本語の件名\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" +
		"Liebe Alice,\r\nschöne Grüße, ¡hola!, привет, こんにちは.\r\n\r\n-- \r\nZoë\r\n")
	r := srv.smtpSend(t, "alice@example.test", message, true)
	if !r.OK {
		t.Fatalf("message refused: %d %s", r.Code, r.Error)
	}
	for _, kw := range []string{"pipelining", "8bitmime", "smtputf8", "size", "enhancedstatuscodes", "chunking"} {
		if _, ok := r.ESMTP[kw]; !ok {
			t.Errorf("EHLO after STARTTLS lacks %s: %v", strings.ToUpper(kw), r.ESMTP)
		}
	}
	if got := r.ESMTP["size"]; got != fmt.Sprint(25<<20) {
		t.Errorf("SIZE %q, want the samples' 25Mi = %d", got, 25<<20)
	}

	dump := srv.imapDump(t, "alice@example.test", alicePassword)
	if len(dump.Messages) != 1 {
		t.Fatalf("INBOX has %d messages, want 1", len(dump.Messages))
	}
	raw := dump.Messages[0].raw(t)
	if !strings.HasSuffix(raw, string(message)) {
		t.Errorf("stored message does not end with the sent one byte for byte:\n%q", raw)
	}
	if prefix := strings.TrimSuffix(raw, string(message)); !strings.HasPrefix(prefix, "Received: ") && !strings.Contains(prefix, "\r\nReceived: ") {
		t.Errorf("no Received: header before the message: %q", prefix)
	}
}

// A 20 MiB message (under the 25 MiB limit) arrives whole; one declared over the limit gets
// 552 5.3.4 (RFC 1870 6.1, RFC 3463) and is not stored.
func TestLargeMessageAndSizeLimit(t *testing.T) {
	srv := newSamplesServer(t)
	var body strings.Builder
	line := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/", 1) + "\r\n" // 66 bytes
	for body.Len() < 20<<20 {
		fmt.Fprintf(&body, "%08d ", body.Len()/len(line))
		body.WriteString(line)
	}
	header := "From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: twenty MiB\r\n\r\n"
	r := srv.smtpSend(t, "alice@example.test", []byte(header+body.String()), false)
	if !r.OK {
		t.Fatalf("20 MiB message refused: %d %s", r.Code, r.Error)
	}

	big := []byte(header + strings.Repeat(line, (26<<20)/len(line)))
	r = srv.smtpSend(t, "alice@example.test", big, false)
	if r.OK || r.Code != 552 || !strings.Contains(r.Error, "5.3.4") {
		t.Errorf("26 MiB message: ok=%v code=%d %q, want 552 5.3.4", r.OK, r.Code, r.Error)
	}

	var d imapDump
	srv.imapClient(t, "alice@example.test", alicePassword, &d, "digest")
	if len(d.Messages) != 1 {
		t.Fatalf("INBOX has %d messages, want only the 20 MiB one", len(d.Messages))
	}
	sum := sha256.Sum256([]byte(body.String()))
	if m := d.Messages[0]; m.Size != body.Len() || m.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("20 MiB body: %d bytes sha256 %s, want %d bytes sha256 %x", m.Size, m.SHA256, body.Len(), sum)
	}
}
