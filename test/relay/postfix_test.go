package relay

import (
	"fmt"
	"net/smtp"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/test/relay/harness"
)

// startPostfix runs a throwaway Postfix (harness.Postfix) on pf.Addr and stops it, every
// process of it, when the test ends; its log is printed if the test failed.
func startPostfix(t *testing.T, pf *harness.Postfix) *harness.Postfix {
	t.Helper()
	requireTool(t, "postfix")
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Postfix log:\n%s", pf.Log())
		}
		if err := pf.Stop(); err != nil {
			t.Errorf("stopping Postfix: %v", err)
		}
	})
	return pf
}

// A sends through a Postfix smarthost (RelayPolicy smarthost, tls: none on loopback), which
// relays to B. b.test has no MX record, so only the smarthost can get it there.
func TestPostfixSmarthost(t *testing.T) {
	w := newWorld(t)
	b := w.server(3, "b.test", "", bob)
	w.dns.SetMX("b.test", "mx.elsewhere.test", harness.IP(99)) // nothing there: must not be used
	pf := startPostfix(t, &harness.Postfix{Addr: harness.IP(10) + ":25",
		Transport: map[string]string{"b.test": "smtp:[" + b.IP + "]:25"}})
	a := w.server(2, "a.test", fmt.Sprintf("{smarthost: {host: %q, port: 25, tls: none}}", harness.IP(10)), alice)

	if err := submit(a, alice, "a.test", "bob@b.test", "Via the smarthost", "Hello through Postfix"); err != nil {
		t.Fatal(err)
	}
	msgs := waitInbox(t, b, bob, "b.test", 1, 30*time.Second)
	need(t, "bob's copy", msgs[0], "Subject: Via the smarthost", "Hello through Postfix", "by mx.a.test",
		"by postfix-"+harness.IP(10)+".localhost (Postfix)", "by mx.b.test")
	waitQueueEmpty(t, a, 10*time.Second)
	if !strings.Contains(pf.Log(), "status=sent") {
		t.Errorf("Postfix's log has no status=sent:\n%s", pf.Log())
	}
}

// Postfix as a remote MX for c.test: A delivers to it over DNS MX and Postfix's virtual(8)
// writes the Maildir; a recipient Postfix refuses bounces to alice; and Postfix sends mail for
// b.test to kubemail B's port 25, where bob reads it.
func TestPostfixAsRemoteMX(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "", alice)
	b := w.server(3, "b.test", "", bob)
	pf := startPostfix(t, &harness.Postfix{Addr: harness.IP(4) + ":25", Mailboxes: []string{"carol@c.test"},
		Transport: map[string]string{"b.test": "smtp:[" + b.IP + "]:25"}})
	w.dns.SetMX("c.test", "mx.c.test", harness.IP(4))

	// kubemail -> Postfix.
	if err := submit(a, alice, "a.test", "carol@c.test", "To Postfix", "Hello Carol"); err != nil {
		t.Fatal(err)
	}
	carol := pf.Maildir("carol@c.test")
	var files []os.DirEntry
	eventually(t, 30*time.Second, "carol's Maildir has the message", func() error {
		files, _ = os.ReadDir(carol)
		if len(files) != 1 {
			return fmt.Errorf("%d files in %s", len(files), carol)
		}
		return nil
	})
	body, err := os.ReadFile(carol + "/" + files[0].Name())
	if err != nil {
		t.Fatal(err)
	}
	need(t, "carol's copy", string(body), "Subject: To Postfix", "Hello Carol", "by mx.a.test", "Message-ID:")
	waitQueueEmpty(t, a, 10*time.Second)

	// Postfix refuses an unknown user (550 5.1.1): alice gets the bounce.
	if err := submit(a, alice, "a.test", "nobody@c.test", "To nobody at Postfix", "Anyone?"); err != nil {
		t.Fatal(err)
	}
	dsn := waitInbox(t, a, alice, "a.test", 1, 30*time.Second)[0]
	need(t, "alice's bounce", dsn, "multipart/report", "Final-Recipient: rfc822; nobody@c.test", "Action: failed",
		"Status: 5.1.1", "Remote-MTA: dns; mx.c.test", "Subject: To nobody at Postfix")
	waitQueueEmpty(t, a, 10*time.Second)

	// Postfix -> kubemail: a message injected into Postfix for bob@b.test.
	msg := "From: carol@c.test\r\nTo: bob@b.test\r\nSubject: From Postfix\r\nMessage-ID: <pf-1@c.test>\r\n\r\nHello Bob from Carol\r\n"
	if err := smtp.SendMail(pf.Addr, nil, "carol@c.test", []string{"bob@b.test"}, []byte(msg)); err != nil {
		t.Fatalf("injecting into Postfix: %v", err)
	}
	got := waitInbox(t, b, bob, "b.test", 1, 30*time.Second)[0]
	need(t, "bob's copy", got, "Subject: From Postfix", "Hello Bob from Carol", "(Postfix)", "by mx.b.test")
	eventually(t, 10*time.Second, "Postfix logs the delivery to B", func() error {
		if !strings.Contains(pf.Log(), "to=<bob@b.test>, relay="+b.IP) || !strings.Contains(pf.Log(), "status=sent") {
			return fmt.Errorf("no status=sent for bob@b.test yet")
		}
		return nil
	})
}
