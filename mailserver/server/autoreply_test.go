package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/store/storetest"
)

const awayDomain = `apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: example-test}
spec: {domain: example.test}
---
apiVersion: v1
kind: Secret
metadata: {name: pw}
stringData: {password: secret-password}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: bob}
spec:
  address: bob@example.test
  passwordSecretRef: {name: pw, key: password}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: alice}
spec:
  address: alice@example.test
  passwordSecretRef: {name: pw, key: password}
`

const awayReply = `  autoReply:
    subject: Out of office
    body: "I am away until 2 December; for urgent matters write to bob@example.test."
`

// The senders are mailboxes at the remote MX, so a reply that should not have been sent would
// be seen there rather than bounce unnoticed.
var remoteSenders = []string{"carol", "dave", "erin", "frank", "gina", "hank", "ivan"}

// startAway serves example.test with alice's autoReply block (none for "") and routes
// remote.test to a real kubemail MX with remoteSenders' mailboxes.
func startAway(t *testing.T, block string) *routedSetup {
	t.Helper()
	a := newRouted(t, "remote.test", remoteSenders...)
	a.write(t, "domain.yaml", awayDomain+block)
	a.start(t)
	return a
}

// mailAlice sends msg to alice@example.test from sender over the MX; 250 is required.
func (a *routedSetup) mailAlice(t *testing.T, sender, rcpt, msg string) {
	t.Helper()
	if err := send(a.srv.addrs["smtp"], sender, []string{rcpt}, msg); err != nil {
		t.Fatalf("mail from <%s>: %v", sender, err)
	}
}

func personal(from, subject string) string {
	return "From: " + from + "\r\nTo: Alice <alice@example.test>\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@remote.test>\r\n\r\nAre you there?\r\n"
}

// Mail from outside to alice gets one reply at the sender's MX: from alice, with the null
// envelope sender, Auto-Submitted, In-Reply-To, DKIM-signed. The same sender gets no second
// one, not even after a restart; lists, bulk, automatic mail, the null sender and a Bcc copy get
// none, while an ordinary sender still does.
func TestAutoReplyOverMX(t *testing.T) {
	a := startAway(t, awayReply)
	a.mailAlice(t, "carol@remote.test", "alice@example.test", personal("carol@remote.test", "lunch"))
	reply := a.remote.WaitInbox("carol@remote.test", 1, 30*time.Second)[0]
	for _, want := range []string{"From: <alice@example.test>", "To: <carol@remote.test>", "Subject: Out of office",
		"Auto-Submitted: auto-replied", "In-Reply-To: <lunch@remote.test>", "DKIM-Signature: ", "d=example.test",
		"I am away until 2 December; for urgent matters write to bob@example.test."} {
		if !strings.Contains(reply, want) {
			t.Errorf("the reply lacks %q:\n%s", want, reply)
		}
	}
	// The MX logs the line just after it stores the message: poll for it.
	eventually(t, "the remote MX took the reply from the null sender", func() error {
		if !containsLine(a.remote.Logs(), `msg="Accepted message"`, `from=""`, "rcpts=[carol@remote.test]") {
			return fmt.Errorf("no such line in its log")
		}
		return nil
	})

	a.mailAlice(t, "carol@remote.test", "alice@example.test", personal("carol@remote.test", "lunch again"))
	a.waitLog(t, `msg="Suppressed an automatic reply"`, "from=carol@remote.test", "reason=already_replied")
	a.restart(t)
	a.mailAlice(t, "carol@remote.test", "alice@example.test", personal("carol@remote.test", "after restart"))
	a.waitLog(t, `msg="Suppressed an automatic reply"`, "from=carol@remote.test", "reason=already_replied")

	for _, tc := range []struct{ sender, msg, reason string }{
		{"dave@remote.test", "List-Id: <lunch.remote.test>\r\n" + personal("dave@remote.test", "list"), "list"},
		{"erin@remote.test", "Precedence: bulk\r\n" + personal("erin@remote.test", "bulk"), "precedence"},
		{"frank@remote.test", "Auto-Submitted: auto-generated\r\n" + personal("frank@remote.test", "auto"), "auto_submitted"},
		{"", personal("hank@remote.test", "bounce"), "null_sender"},
		{"gina@remote.test", strings.Replace(personal("gina@remote.test", "bcc"), "Alice <alice@example.test>", "bob@example.test", 1), "not_addressed"},
	} {
		a.mailAlice(t, tc.sender, "alice@example.test", tc.msg)
		from := "from=" + tc.sender + " "
		if tc.sender == "" {
			from = `from="" `
		}
		a.waitLog(t, `msg="Suppressed an automatic reply"`, from, "reason="+tc.reason)
	}
	// The control: an ordinary message is still answered, after all of those were decided.
	a.mailAlice(t, "ivan@remote.test", "alice@example.test", personal("ivan@remote.test", "control"))
	a.remote.WaitInbox("ivan@remote.test", 1, 30*time.Second)
	for _, s := range remoteSenders {
		want := 0
		if s == "carol" || s == "ivan" {
			want = 1
		}
		if n := len(a.remote.Inbox(s + "@remote.test")); n != want {
			t.Errorf("%s@remote.test has %d replies, want %d", s, n, want)
		}
	}
}

// A message the queue delivers (bob's submission to alice and someone outside) is answered as
// well, once: the reply reaches bob's INBOX through the queue.
func TestAutoReplyForQueuedMail(t *testing.T) {
	a := startAway(t, awayReply)
	c, err := gosmtp.DialTLS(a.srv.addrs["submissions"], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "bob@example.test", "secret-password")); err != nil {
		t.Fatal(err)
	}
	msg := "From: bob@example.test\r\nTo: alice@example.test, carol@remote.test\r\nSubject: plans\r\n\r\nHi\r\n"
	if err := c.SendMail("bob@example.test", []string{"alice@example.test", "carol@remote.test"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	a.waitLog(t, `msg="Sent an automatic reply"`, "mailbox=alice@example.test", "to=bob@example.test")
	var replies []string
	eventually(t, "the reply in bob's INBOX", func() error {
		replies = nil
		for _, m := range storetest.Inbox(t, filepath.Join(a.data, "mail", "example.test", "bob")) {
			replies = append(replies, m.Data)
		}
		if len(replies) != 1 {
			return fmt.Errorf("%d messages", len(replies))
		}
		return nil
	})
	if !strings.Contains(replies[0], "Auto-Submitted: auto-replied") || !strings.Contains(replies[0], "Subject: Out of office") {
		t.Errorf("bob's message:\n%s", replies[0])
	}
	if n := strings.Count(a.srv.log.String(), `msg="Sent an automatic reply"`); n != 1 {
		t.Errorf("%d replies sent, want 1", n)
	}
}

// Replies follow the config in force: none without autoReply, none outside its window, and a
// reload that opens the window answers the next message without a restart.
func TestAutoReplyReload(t *testing.T) {
	a := startAway(t, "")
	a.mailAlice(t, "carol@remote.test", "alice@example.test", personal("carol@remote.test", "before"))
	reloads := func() int { return strings.Count(a.srv.log.String(), `msg="Reloaded config"`) }
	a.write(t, "domain.yaml", awayDomain+awayReply+"    start: \"2020-01-01T00:00:00Z\"\n    end: \"2020-01-08T00:00:00Z\"\n")
	eventually(t, "the first reload", func() error {
		if reloads() < 1 {
			return fmt.Errorf("not reloaded")
		}
		return nil
	})
	a.mailAlice(t, "erin@remote.test", "alice@example.test", personal("erin@remote.test", "expired"))
	a.waitLog(t, `msg="Suppressed an automatic reply"`, "from=erin@remote.test ", "reason=outside_window")
	a.write(t, "domain.yaml", awayDomain+awayReply)
	eventually(t, "the second reload", func() error {
		if reloads() < 2 {
			return fmt.Errorf("not reloaded")
		}
		return nil
	})
	a.mailAlice(t, "dave@remote.test", "alice@example.test", personal("dave@remote.test", "after"))
	a.remote.WaitInbox("dave@remote.test", 1, 30*time.Second)
	for _, s := range []string{"carol", "erin"} {
		if n := len(a.remote.Inbox(s + "@remote.test")); n != 0 {
			t.Errorf("%s got %d replies, want none", s, n)
		}
	}
}

// A bad autoReply stops start-up with an error naming the field.
func TestStartupRefusesBadAutoReply(t *testing.T) {
	for _, tc := range []struct{ block, want string }{
		{awayReply + "    start: \"2026-12-02T00:00:00Z\"\n    end: \"2026-11-27T00:00:00Z\"\n", `Mailbox "default/alice": spec.autoReply.end`},
		{awayReply + "    interval: 1h\n", `Mailbox "default/alice": spec.autoReply.interval`},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "domain.yaml"), []byte(awayDomain+tc.block), 0o644); err != nil {
			t.Fatal(err)
		}
		err := Run(context.Background(), Options{Manifests: dir, DataDir: t.TempDir(), SMTPAddr: "127.0.0.1:0"})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want it to name %q", err, tc.want)
		}
	}
}

// Mail the MX puts into Junk (a DNSBL with action Junk lists the client) is not answered; the
// same mail from a clean client is.
func TestAutoReplyNotForJunk(t *testing.T) {
	a := newRouted(t, "remote.test", remoteSenders...)
	a.dns.AddAddr("2.0.0.127.bl.test", "127.0.0.2")
	a.write(t, "domain.yaml", strings.Replace(awayDomain+awayReply, "spec: {domain: example.test}",
		"spec:\n  domain: example.test\n  antispam: {dnsbls: [{zone: bl.test, action: Junk}]}", 1))
	a.start(t)

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", a.srv.addrs["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClient(conn)
	if err := c.SendMail("dave@remote.test", []string{"alice@example.test"}, strings.NewReader(personal("dave@remote.test", "junk"))); err != nil {
		t.Fatalf("mail from the listed client: %v", err)
	}
	c.Quit()
	a.waitLog(t, `msg="Accepted message"`, "from=dave@remote.test", "folder=Junk")
	a.mailAlice(t, "ivan@remote.test", "alice@example.test", personal("ivan@remote.test", "clean"))
	a.remote.WaitInbox("ivan@remote.test", 1, 30*time.Second)
	if n := len(a.remote.Inbox("dave@remote.test")); n != 0 {
		t.Errorf("the junked message got %d replies", n)
	}
	if strings.Contains(a.srv.log.String(), "from=dave@remote.test reason=") {
		t.Errorf("the junked message reached the responder:\n%s", a.srv.log.String())
	}
}
