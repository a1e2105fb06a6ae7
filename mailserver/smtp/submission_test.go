package smtp

import (
	"encoding/base64"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestSubmissionAuthOnlyAfterTLS(t *testing.T) {
	s := startServer(t, true, false)
	c := greeted(t, s.addr)
	c.cmd("EHLO client.test")
	ext := c.expect(250)
	if !hasLine(ext, "STARTTLS") || strings.Contains(ext, "AUTH") {
		t.Fatalf("EHLO before TLS:\n%s", ext)
	}
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.test\x00alice-password"))
	c.expect(523, "5.7.10") // go-smtp's reply: TLS is required
	c.cmd("MAIL FROM:<alice@example.test>")
	c.expect(530, "5.7.0")
	ext = c.startTLS(s.client)
	if !hasLine(ext, "AUTH PLAIN LOGIN") || hasLine(ext, "STARTTLS") {
		t.Fatalf("EHLO under TLS:\n%s", ext)
	}
	c.cmd("MAIL FROM:<alice@example.test>")
	c.expect(530, "5.7.0")
	s.waitLog("Rejected sender", "code=530", `reason="not authenticated"`)
}

func TestSubmissionAuthReplies(t *testing.T) {
	s := startServer(t, true, false)
	c := greeted(t, s.addr)
	c.startTLS(s.client)
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.test\x00wrong"))
	c.expect(535, "5.7.8")
	c.cmd("AUTH PLAIN " + b64("\x00nobody@example.test\x00alice-password"))
	c.expect(535, "5.7.8")
	c.cmd("AUTH PLAIN " + b64("bob@example.test\x00alice@example.test\x00alice-password"))
	c.expect(535, "5.7.8") // acting for someone else
	c.cmd("AUTH PLAIN " + b64("no separators"))
	c.expect(501, "5.5.2")
	c.cmd("AUTH CRAM-MD5")
	c.expect(504, "5.7.4")
	c.cmd("AUTH LOGIN")
	c.expect(334, "VXNlcm5hbWU6") // "Username:"
	c.cmd(b64("alice@example.test"))
	c.expect(334, "UGFzc3dvcmQ6") // "Password:"
	c.cmd(b64("alice-password"))
	c.expect(235, "2.0.0")
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.test\x00alice-password"))
	c.expect(503, "5.5.1") // go-smtp: already authenticated
	s.waitLog("Rejected login", "user=alice@example.test", `reason="invalid credentials"`)
	s.waitLog("Authenticated user", "user=alice@example.test")

	// LOGIN with the user name as initial response, after a STARTTLS-fresh connection.
	c = greeted(t, s.addr)
	c.startTLS(s.client)
	c.cmd("AUTH LOGIN " + b64("bob@example.test"))
	c.expect(334, "UGFzc3dvcmQ6")
	c.cmd(b64("bob-password"))
	c.expect(235)
}

// TestSubmissionSenderAndRecipients: alice may send as herself, her aliases and plus-addresses,
// to local recipients only; her message gets Date and Message-ID.
func TestSubmissionSenderAndRecipients(t *testing.T) {
	s := startServer(t, true, false)
	c := greeted(t, s.addr)
	c.startTLS(s.client)
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.test\x00alice-password"))
	c.expect(235)
	for _, from := range []string{"<bob@example.test>", "<>", "<alice@elsewhere.test>", "<carol@small.test>"} {
		c.cmd("MAIL FROM:" + from)
		c.expect(553, "5.7.1")
	}
	for _, from := range []string{"<alice@example.test>", "<sales@example.test>", "<Alice+lists@Example.Test>"} {
		c.cmd("MAIL FROM:" + from)
		c.expect(250)
		c.cmd("RSET")
		c.expect(250)
	}
	c.cmd("MAIL FROM:<sales@example.test>")
	c.expect(250)
	c.cmd("RCPT TO:<friend@elsewhere.test>")
	c.expect(554, "5.7.1 Outbound delivery is not enabled")
	c.cmd("RCPT TO:<nobody@example.test>")
	c.expect(550, "5.1.1")
	c.cmd("RCPT TO:<bob@example.test>")
	c.expect(250)
	c.cmd("DATA")
	c.expect(354)
	c.write("From: sales@example.test\r\nTo: bob@example.test\r\nSubject: no date\r\n\r\nhello\r\n.\r\n")
	c.expect(250)
	got := s.only("bob@example.test")
	header, _, _ := strings.Cut(got, "\r\n\r\n")
	for _, re := range []string{
		`(?m)^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\t\(using TLSv1\.3 with cipher \S+\)\r\n\t\(Authenticated sender: alice@example\.test\)\r\n\tby mx\.example\.test \(kubemail\) with ESMTPSA id \w+\r\n\tfor <bob@example\.test>; `,
		`(?m)^Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r$`,
		`(?m)^Message-ID: <[0-9a-f]{32}@mx\.example\.test>\r$`,
	} {
		if !regexp.MustCompile(re).MatchString(header) {
			t.Errorf("header does not match %s:\n%s", re, header)
		}
	}
	s.waitLog("Accepted message", "server=submission", "from=sales@example.test", "user=alice@example.test")
	s.waitLog("Rejected recipient", "rcpt=friend@elsewhere.test", "code=554")
	s.waitLog("Rejected sender", "from=bob@example.test", "code=553")
}

// TestSubmissionImplicitTLS is port 465: the same server on a TLS listener, with go-smtp's
// client; a message that has Date and Message-ID keeps them as they are.
func TestSubmissionImplicitTLS(t *testing.T) {
	s := startServer(t, true, true)
	c, err := gosmtp.DialTLS(s.addr, s.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered under implicit TLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", "bob@example.test", "bob-password")); err != nil {
		t.Fatal(err)
	}
	msg := message("kept", "as it is")
	if err := c.SendMail("bob@example.test", []string{"alice@example.test", "postmaster@example.test"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	got := s.only("alice@example.test")
	if !strings.HasSuffix(got, msg) || strings.Count(got, "Message-ID:") != 1 || strings.Count(got, "\nDate:") != 1 {
		t.Fatalf("stored:\n%s", got)
	}
}

func TestAddMissingHeaders(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	longField := "X-Long: " + strings.Repeat("v", 5000) + "\r\n"
	for _, tc := range []struct {
		name, msg        string
		wantDate, wantID bool
	}{
		{"both missing", "Subject: x\r\n\r\nbody\r\n", true, true},
		{"both present", "Date: x\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n", false, false},
		{"obsolete space and case", "DATE : x\r\nmessage-id:<a@b>\r\n\r\n", false, false},
		{"continuation is not a field", "Subject: x\r\n Date: y\r\n\r\n", true, true},
		{"in the body is not a field", "Subject: x\r\n\r\nDate: y\r\nMessage-ID: <z>\r\n", true, true},
		{"after a long field", longField + "Date: x\r\n\r\n", false, true},
		{"all header", "Subject: x\r\nDate: y\r\n", false, true},
		{"empty", "", true, true},
		{"header over the scan limit", strings.Repeat(longField, maxHeaderScan/len(longField)+1) + "\r\nbody", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix, r := addMissingHeaders([]byte("Received: x\r\n"), strings.NewReader(tc.msg), "mx.test", now)
			rest, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != tc.msg {
				t.Fatalf("message changed: %q", rest)
			}
			p := string(prefix)
			if !strings.HasPrefix(p, "Received: x\r\n") {
				t.Fatalf("prefix %q", p)
			}
			if got := strings.Contains(p, "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n"); got != tc.wantDate {
				t.Errorf("Date added %v, want %v: %q", got, tc.wantDate, p)
			}
			if got := strings.Contains(p, "Message-ID: <"); got != tc.wantID {
				t.Errorf("Message-ID added %v, want %v: %q", got, tc.wantID, p)
			}
		})
	}
}
