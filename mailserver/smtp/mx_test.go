package smtp

import (
	"fmt"
	"net/smtp"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/config"
)

func TestMXGreetingAndExtensions(t *testing.T) {
	s := startServer(t, false, false)
	c := dialRaw(t, s.addr)
	c.expect(220, testHostname+" ESMTP")
	c.cmd("EHLO client.test")
	ext := c.expect(250)
	for _, want := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE 26214400", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"} {
		if !hasLine(ext, want) {
			t.Errorf("EHLO lacks %q:\n%s", want, ext)
		}
	}
	if strings.Contains(ext, "AUTH") {
		t.Errorf("MX offers AUTH:\n%s", ext)
	}
	ext = c.startTLS(s.client)
	if hasLine(ext, "STARTTLS") || !hasLine(ext, "CHUNKING") {
		t.Errorf("EHLO under TLS:\n%s", ext)
	}
	c.cmd("QUIT")
	c.expect(221)
}

func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// TestMXDeliverGoClient sends with go-smtp's client over STARTTLS and checks the stored copy and
// its Received: header.
func TestMXDeliverGoClient(t *testing.T) {
	s := startServer(t, false, false)
	c, err := gosmtp.DialStartTLS(s.addr, s.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := message("hello", "Hi Alice.")
	if err := c.SendMail("sender@remote.test", []string{"alice@example.test"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	got := s.only("alice@example.test")
	header, rest, _ := strings.Cut(got, "\r\n\r\n")
	if !strings.HasSuffix(got, msg) || !strings.HasPrefix(header, "Received: from localhost ([127.0.0.1])\r\n\t(using TLSv1.3 with cipher ") {
		t.Fatalf("stored message:\n%s", got)
	}
	for _, want := range []string{"\r\n\tby mx.example.test (kubemail) with ESMTPS id ", "\r\n\tfor <alice@example.test>; "} {
		if !strings.Contains(header, want) {
			t.Errorf("Received: lacks %q:\n%s", want, header)
		}
	}
	if rest != "Hi Alice.\r\n" {
		t.Errorf("body %q", rest)
	}
	line := s.waitLog("Accepted message", "from=sender@remote.test", "rcpts=[alice@example.test]", "size=", "duration=")
	id := strings.Fields(line[strings.Index(line, "id=")+3:])[0]
	if !strings.Contains(header, "id "+id+"\r\n") {
		t.Errorf("log id %s is not the Received: id:\n%s", id, header)
	}
	if len(s.maildir("bob@example.test")) != 0 {
		t.Error("bob got a copy")
	}
}

// TestMXStdlibClient sends without TLS with net/smtp and checks the protocol name.
func TestMXStdlibClient(t *testing.T) {
	s := startServer(t, false, false)
	c, err := smtp.Dial(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@remote.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, message("plain", "..dot-stuffed line\r\n.\r\nnot the end"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	got := s.only("bob@example.test")
	// net/smtp says SMTPUTF8 whenever the server offers it (RFC 6531 4.3).
	if !strings.Contains(got, " with UTF8SMTP id ") || !strings.HasSuffix(got, "\r\n\r\n..dot-stuffed line\r\n.\r\nnot the end\r\n") {
		t.Fatalf("stored message:\n%q", got)
	}
}

func TestMXRecipientReplies(t *testing.T) {
	s := startServer(t, false, false)
	c := greeted(t, s.addr)
	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)
	for _, tc := range []struct {
		rcpt string
		code int
		text string
	}{
		{"<nobody@example.test>", 550, "5.1.1"},
		{"<someone@elsewhere.test>", 554, "5.7.1 Relay access denied"},
		{"<someone@example.test.elsewhere.test>", 554, "5.7.1"},
		{"<alice%elsewhere.test@example.test>", 554, "5.7.1"},
		{"<elsewhere.test!alice@example.test>", 554, "5.7.1"},
		{`<"alice@elsewhere.test"@example.test>`, 554, "5.7.1"},
		{"<alice@elsewhere.test@example.test>", 554, "5.7.1"},
		{"<@example.test:bob@elsewhere.test>", 554, "5.7.1"},
		{"<alice@[127.0.0.1]>", 554, "5.7.1"},
		{"<alice@exa_mple.test>", 501, "5.1.3"},
		{"<alice@example..test>", 501, "5.1.3"},
		{"<" + strings.Repeat("a", 65) + "@example.test>", 501, "5.1.3"},
		{"<jörg@example.test>", 553, "5.6.7"},
		{"<alice>", 501, "5.5.2"},
		{"<alice@example.test> FOO=BAR", 500, "5.5.4"},
		// Accepted: quoting that means nothing, source routes (ignored), case, aliases.
		{`<"alice"@example.test>`, 250, "2.0.0"},
		{"<@relay.test:alice@example.test>", 250, "2.0.0"},
		{"<ALICE@Example.Test>", 250, "2.0.0"},
		{"<postmaster@example.test>", 250, "2.0.0"},
		{"<alice+news@example.test>", 250, "2.0.0"},
	} {
		c.cmd("RCPT TO:" + tc.rcpt)
		c.expect(tc.code, tc.text)
	}
	c.cmd("DATA")
	c.expect(354)
	c.write(message("replies", "body") + ".\r\n")
	c.expect(250, "2.0.0 OK: queued as ")
	got := s.only("alice@example.test")
	if strings.Contains(got, "\tfor <") {
		t.Errorf("Received: names a recipient of several:\n%s", got)
	}
	s.waitLog("Rejected recipient", "rcpt=nobody@example.test", "code=550", `reason="unknown local address"`)
	s.waitLog("Rejected recipient", "code=554", `reason="percent hack"`)
	s.waitLog("Rejected recipient", "code=554", `reason="domain not served here"`)
}

// TestMXOneCopyPerMailbox sends to a mailbox by its address, an alias, a plus-address and twice
// by the same address: one copy each for alice and bob.
func TestMXOneCopyPerMailbox(t *testing.T) {
	s := startServer(t, false, false)
	c := greeted(t, s.addr)
	// Pipelined: every command in one write (RFC 2920).
	c.write("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<sales@example.test>\r\n" +
		"RCPT TO:<alice+tag@example.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	for range 6 {
		c.expect(250)
	}
	c.expect(354)
	c.write(message("dups", "one copy") + ".\r\n")
	c.expect(250)
	s.only("alice@example.test")
	s.only("bob@example.test")
	s.waitLog("Accepted message", "mailboxes=\"[alice@example.test bob@example.test]\"")
}

func TestMXNullSenderAndMailSyntax(t *testing.T) {
	s := startServer(t, false, false)
	c := greeted(t, s.addr)
	for _, tc := range []struct {
		from string
		code int
		text string
	}{
		{"FROM:<alice>", 501, "5.5.2"},
		{"FROM:alice@remote.test>", 500, "5.5.4"}, // go-smtp reads ">" as a parameter
		{"FROM:<al ice@remote.test>", 501, "5.5.2"},
		{"FROM:<alice@-remote.test>", 501, "5.1.7"},
		{"FROM:<jörg@remote.test>", 553, "5.6.7"},
		{"FROM:<a@remote.test> SIZE=x", 501, "5.5.4"},
		{"FROM:<a@remote.test> SIZE=26214401", 552, "5.3.4"},
		{"TO:<a@remote.test>", 501, "5.5.2"},
	} {
		c.cmd("MAIL " + tc.from)
		c.expect(tc.code, tc.text)
		c.cmd("RSET")
		c.expect(250)
	}
	c.cmd("RCPT TO:<alice@example.test>")
	c.expect(502, "5.5.1")
	c.cmd("MAIL FROM:<>")
	c.expect(250)
	c.cmd("MAIL FROM:<>")
	c.expect(503, "5.5.1")
	c.cmd("RCPT TO:<bob@example.test>")
	c.expect(250)
	c.cmd("DATA")
	c.expect(354)
	c.write("Subject: bounce\r\n\r\nbounced\r\n.\r\n")
	c.expect(250)
	if got := s.only("bob@example.test"); !strings.HasSuffix(got, "Subject: bounce\r\n\r\nbounced\r\n") {
		t.Fatalf("stored %q", got)
	}
	s.waitLog("Accepted message", "from=\"\"")
}

// TestMXReloadKeepsTransaction: a config reload does not change a transaction under way, and
// the next transaction sees it.
func TestMXReloadKeepsTransaction(t *testing.T) {
	s := startServer(t, false, false)
	c := dialRaw(t, s.addr)
	c.expect(220)
	c.cmd("HELO client.test") // plain HELO works as well
	c.expect(250)
	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)

	cfg := testConfig(t)
	cfg.Mailboxes = cfg.Mailboxes[:1] // alice only: bob is gone
	cfg.Mailboxes[0].Aliases = append(cfg.Mailboxes[0].Aliases, "newalias@example.test")
	s.live.Store(config.NewDirectory(cfg))

	c.cmd("RCPT TO:<bob@example.test>")
	c.expect(250)
	c.cmd("RCPT TO:<newalias@example.test>")
	c.expect(550, "5.1.1")
	c.cmd("DATA")
	c.expect(354)
	c.write(message("reload", "old config") + ".\r\n")
	c.expect(250)
	s.only("bob@example.test")

	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)
	c.cmd("RCPT TO:<bob@example.test>")
	c.expect(550, "5.1.1")
	c.cmd("RCPT TO:<newalias@example.test>")
	c.expect(250)
}
