package smtp

import (
	"fmt"
	"strings"
	"testing"
)

func TestMXRecipientLimitPerDomain(t *testing.T) {
	s := startServer(t, false, false)
	c := greeted(t, s.addr)
	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)
	for _, r := range []string{"carol", "dave", "erin"} {
		c.cmd("RCPT TO:<" + r + "@small.test>")
		c.expect(250)
	}
	c.cmd("RCPT TO:<frank@small.test>")
	c.expect(452, "4.5.3")
	// The limit of a transaction is the smallest of its domains': 3 here, so bob waits too.
	c.cmd("RCPT TO:<bob@example.test>")
	c.expect(452, "4.5.3")
	c.cmd("DATA")
	c.expect(354)
	c.write(message("limit", "three of four") + ".\r\n")
	c.expect(250)
	for _, r := range []string{"carol", "dave", "erin"} {
		s.only(r + "@small.test")
	}
	if n := len(s.maildir("frank@small.test")); n != 0 {
		t.Errorf("frank got %d messages past the limit", n)
	}
	s.waitLog("Rejected recipient", "rcpt=frank@small.test", "code=452", `reason="recipient limit reached"`)
}

// TestMXDefaultRecipientLimit pipelines 105 recipients: 100 are accepted and the message
// reaches the mailbox once; the 452s do not count as abuse, so the connection stays.
func TestMXDefaultRecipientLimit(t *testing.T) {
	s := startServer(t, false, false)
	c := greeted(t, s.addr)
	var b strings.Builder
	b.WriteString("MAIL FROM:<sender@remote.test>\r\n")
	for i := range 105 {
		fmt.Fprintf(&b, "RCPT TO:<alice+%d@example.test>\r\n", i)
	}
	b.WriteString("DATA\r\n")
	c.write(b.String())
	c.expect(250)
	for i := range 105 {
		if i < 100 {
			c.expect(250)
		} else {
			c.expect(452, "4.5.3 Too many recipients")
		}
	}
	c.expect(354)
	c.write(message("hundred", "x") + ".\r\n")
	c.expect(250)
	s.only("alice@example.test")
}

// TestMXRecipientLimitAboveDefault: a domain may allow more than the default 100.
func TestMXRecipientLimitAboveDefault(t *testing.T) {
	s := startServer(t, false, false)
	c := greeted(t, s.addr)
	var b strings.Builder
	b.WriteString("MAIL FROM:<sender@remote.test>\r\n")
	for i := range 151 {
		fmt.Fprintf(&b, "RCPT TO:<gina+%d@many.test>\r\n", i)
	}
	c.write(b.String())
	c.expect(250)
	for range 150 {
		c.expect(250)
	}
	c.expect(452, "4.5.3")
}

func TestMXSizeLimits(t *testing.T) {
	s := startServer(t, false, false)
	c := greeted(t, s.addr)

	// SIZE= over the advertised limit: refused at MAIL by go-smtp.
	c.cmd("MAIL FROM:<sender@remote.test> SIZE=26214401")
	c.expect(552, "5.3.4")

	// SIZE= over small.test's 10 KiB: refused for that recipient only (RFC 1870 6.1).
	c.cmd("MAIL FROM:<sender@remote.test> SIZE=20000")
	c.expect(250)
	c.cmd("RCPT TO:<carol@small.test>")
	c.expect(552, "5.3.4")
	c.cmd("RCPT TO:<alice@example.test>")
	c.expect(250)
	c.cmd("RSET")
	c.expect(250)

	// Actual bytes over small.test's limit with no SIZE=: refused at the end of DATA, and no
	// copy anywhere, not even for alice whose domain would take it.
	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)
	c.cmd("RCPT TO:<alice@example.test>")
	c.expect(250)
	c.cmd("RCPT TO:<carol@small.test>")
	c.expect(250)
	c.cmd("DATA")
	c.expect(354)
	c.write(message("big", strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 200)) + ".\r\n")
	c.expect(552, "5.3.4")
	if n := len(s.maildir("alice@example.test")) + len(s.maildir("carol@small.test")); n != 0 {
		t.Fatalf("%d copies left by a refused message", n)
	}
	s.waitLog("Rejected message", "code=552", `reason="message over the size limit"`)

	// Just under the limit goes through on the same connection.
	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)
	c.cmd("RCPT TO:<carol@small.test>")
	c.expect(250)
	c.cmd("DATA")
	c.expect(354)
	c.write(message("fits", strings.Repeat(strings.Repeat("x", 88)+"\r\n", 100)) + ".\r\n")
	c.expect(250)
	s.only("carol@small.test")
}

func TestMXBDAT(t *testing.T) {
	s := startServer(t, false, false)
	c := greeted(t, s.addr)
	part1 := "Subject: chunks\r\n\r\n.a line starting with a dot\r\n"
	part2 := ".\r\nthe end\r\n"
	c.write("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<bob@example.test>\r\n" +
		fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1) +
		fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	c.expect(250)
	c.expect(250)
	c.expect(250, "Continue")
	c.expect(250, "2.0.0 OK: queued as ")
	// BDAT data is taken as it is: no dot-stuffing, and ".\r\n" does not end it.
	if got := s.only("bob@example.test"); !strings.HasSuffix(got, "\r\n"+part1+part2) {
		t.Fatalf("stored %q", got)
	}

	// Over small.test's limit in chunks: 552 and nothing stored.
	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)
	c.cmd("RCPT TO:<carol@small.test>")
	c.expect(250)
	chunk := strings.Repeat("y", 78) + "\r\n"
	chunk = strings.Repeat(chunk, 80) // 6400 bytes
	c.write(fmt.Sprintf("BDAT %d\r\n%s", len(chunk), chunk))
	c.expect(250)
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	c.expect(552, "5.3.4")
	if n := len(s.maildir("carol@small.test")); n != 0 {
		t.Fatalf("carol holds %d messages", n)
	}
	// The session goes on.
	c.cmd("NOOP")
	c.expect(250)

	// RSET in the middle of a BDAT transfer abandons it.
	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)
	c.cmd("RCPT TO:<carol@small.test>")
	c.expect(250)
	c.write("BDAT 5\r\nhello")
	c.expect(250)
	c.cmd("RSET")
	c.expect(250)
	s.waitLog("Rejected message", `reason="transfer reset by the client"`)
	if n := len(s.maildir("carol@small.test")); n != 0 {
		t.Fatalf("carol holds %d messages", n)
	}
}

func TestMXBareLF(t *testing.T) {
	s := startServer(t, false, false)
	c := greeted(t, s.addr)
	c.write("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(250)
	c.expect(354)
	// An SMTP smuggling attempt: "\n.\n" must not end the data, and the bare LF refuses it all.
	c.write("Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@remote.test>\r\n\r\n.\r\n")
	c.expect(550, "5.5.2")
	if n := len(s.maildir("alice@example.test")) + len(s.maildir("bob@example.test")); n != 0 {
		t.Fatalf("%d copies of a refused message", n)
	}
	s.waitLog("Rejected message", "code=550", `reason="bare LF in message"`)
	// The connection stays usable and the next message is fine.
	c.write("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("Subject: two\r\n\r\nfine\r\n.\r\n")
	c.expect(250)
	s.only("alice@example.test")
}

func TestMXOverlongLines(t *testing.T) {
	s := startServer(t, false, false)

	// A command line over 2000 octets: go-smtp's 500 5.4.0 and the connection ends.
	c := greeted(t, s.addr)
	c.cmd("MAIL FROM:<" + strings.Repeat("a", 3000) + "@remote.test>")
	c.expect(500, "5.4.0")
	c.expectClosed()

	// A data line over 2000 octets: 500 5.5.2, no copy, and the connection ends.
	c = greeted(t, s.addr)
	c.write("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("Subject: long\r\n\r\n" + strings.Repeat("z", 5000) + "\r\n.\r\n")
	c.expect(500, "5.5.2 Line too long")
	c.expect(500, "5.4.0")
	c.expectClosed()
	if n := len(s.maildir("alice@example.test")); n != 0 {
		t.Fatalf("%d copies of a refused message", n)
	}
	// A line of exactly 998 octets plus CRLF is fine (RFC 5322 2.1.1).
	c = greeted(t, s.addr)
	c.write("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("Subject: long\r\n\r\n" + strings.Repeat("z", 998) + "\r\n.\r\n")
	c.expect(250)
	s.only("alice@example.test")
}

func TestMXGarbage(t *testing.T) {
	s := startServer(t, false, false)
	c := dialRaw(t, s.addr)
	c.expect(220)
	c.cmd("MAIL FROM:<a@remote.test>")
	c.expect(502, "5.5.1") // EHLO first
	c.cmd("\x00\x01\x02\xff\xfe")
	c.expect(501, "5.5.2")
	c.cmd("FOOBAR baz")
	c.expect(501, "5.5.2")
	c.cmd("EXPN staff")
	c.expect(502, "5.5.1")
	c.cmd("HELO")
	c.expect(501, "5.5.2")
	c.cmd("XYZW")
	c.expect(500, "5.5.2")
	c.cmd("Y")
	c.expect(501)
	c.expect(500, "Too many errors")
	c.expectClosed()

	// A directory harvest: the 21st unknown recipient ends the connection.
	c = greeted(t, s.addr)
	c.cmd("MAIL FROM:<a@remote.test>")
	c.expect(250)
	for i := range 20 {
		c.cmd(fmt.Sprintf("RCPT TO:<guess%d@example.test>", i))
		c.expect(550, "5.1.1")
	}
	// Pipelined after the one that crosses the line: a good recipient and the data, which
	// must not be taken.
	c.write("RCPT TO:<guess20@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\n")
	c.expect(421, "4.7.0")
	c.expect(421, "4.7.0")
	c.expect(502) // DATA without an accepted recipient
	for {
		code, _, err := c.reply() // whatever go-smtp makes of the data lines, never a 250 2.0.0
		if err != nil {
			break
		}
		if code == 250 || code == 354 {
			t.Fatalf("got %d after 421", code)
		}
	}
	if n := len(s.maildir("alice@example.test")); n != 0 {
		t.Fatalf("alice got %d messages after 421", n)
	}

	// The server is none the worse.
	c = greeted(t, s.addr)
	c.write("MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("Subject: after\r\n\r\nstill here\r\n.\r\n")
	c.expect(250)
	s.only("bob@example.test")
}
