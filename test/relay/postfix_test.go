package relay

import (
	"encoding/json"
	"fmt"
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
// b.test to kubemail B's port 25, where bob reads it. Both directions use opportunistic
// STARTTLS (kubemail's Go TLS against Postfix's OpenSSL, each way).
func TestPostfixAsRemoteMX(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "", alice)
	b := w.server(3, "b.test", "", bob)
	certs := testCA(t, []string{"mx.c.test"})
	pf := startPostfix(t, &harness.Postfix{Addr: harness.IP(4) + ":25", Mailboxes: []string{"carol@c.test"},
		Transport: map[string]string{"b.test": "smtp:[" + b.IP + "]:25"},
		Main: []string{"smtpd_tls_security_level = may", "smtpd_tls_cert_file = " + certs + "/cert.pem",
			"smtpd_tls_key_file = " + certs + "/key.pem", "smtpd_tls_received_header = yes",
			"smtp_tls_security_level = may", "smtp_tls_loglevel = 1"}})
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
	need(t, "carol's copy", string(body), "Subject: To Postfix", "Hello Carol", "by mx.a.test", "Message-ID:",
		"(using TLSv1.3", "with ESMTPS id")
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
	if err := sendPlain(pf.Addr, "carol@c.test", []string{"bob@b.test"}, msg); err != nil {
		t.Fatalf("injecting into Postfix: %v", err)
	}
	got := waitInbox(t, b, bob, "b.test", 1, 30*time.Second)[0]
	need(t, "bob's copy", got, "Subject: From Postfix", "Hello Bob from Carol", "(Postfix)", "by mx.b.test (kubemail) with ESMTPS")
	eventually(t, 10*time.Second, "Postfix logs the delivery to B", func() error {
		if !strings.Contains(pf.Log(), "to=<bob@b.test>, relay="+b.IP) || !strings.Contains(pf.Log(), "status=sent") {
			return fmt.Errorf("no status=sent for bob@b.test yet")
		}
		return nil
	})
}

// A message from a remote sender (carol@c.test, whose MX is Postfix) relayed by A for a trusted
// client, to one good and one unknown recipient at B and one local recipient: each good
// recipient gets one copy, and the bounce for the unknown one travels by mail, from the null
// sender, to carol's Maildir at Postfix. A failing message from the null sender bounces nowhere.
func TestBounceToRemoteSender(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "{trustedNetworks: [127.0.0.0/8]}", alice)
	b := w.server(3, "b.test", "", bob)
	pf := startPostfix(t, &harness.Postfix{Addr: harness.IP(4) + ":25", Mailboxes: []string{"carol@c.test"}})
	w.dns.SetMX("c.test", "mx.c.test", harness.IP(4))

	msg := "From: carol@c.test\r\nTo: bob@b.test, nobody@b.test, alice@a.test\r\nSubject: Three recipients\r\n" +
		"Message-ID: <three@c.test>\r\n\r\nHello all\r\n"
	if err := sendPlain(a.Addr("25"), "carol@c.test", []string{"bob@b.test", "nobody@b.test", "alice@a.test"}, msg); err != nil {
		t.Fatalf("relaying through A from a trusted network: %v", err)
	}
	need(t, "bob's copy", waitInbox(t, b, bob, "b.test", 1, 30*time.Second)[0], "Subject: Three recipients")
	need(t, "alice's copy", waitInbox(t, a, alice, "a.test", 1, 30*time.Second)[0], "Subject: Three recipients")
	carol := pf.Maildir("carol@c.test")
	var files []os.DirEntry
	eventually(t, 30*time.Second, "carol's Maildir has the bounce", func() error {
		files, _ = os.ReadDir(carol)
		if len(files) != 1 {
			return fmt.Errorf("%d files in %s", len(files), carol)
		}
		return nil
	})
	raw, err := os.ReadFile(carol + "/" + files[0].Name())
	if err != nil {
		t.Fatal(err)
	}
	dsn := string(raw)
	need(t, "carol's bounce", dsn, "Return-Path: <>", "multipart/report", "Final-Recipient: rfc822; nobody@b.test",
		"Action: failed", "Status: 5.1.1", "Subject: Three recipients")
	if strings.Contains(dsn, "Final-Recipient: rfc822; bob@b.test") || strings.Contains(dsn, "Final-Recipient: rfc822; alice@a.test") {
		t.Errorf("the bounce names recipients that got the message:\n%s", dsn)
	}
	waitQueueEmpty(t, a, 10*time.Second)

	// The null sender: the failure is logged, nobody gets a notice.
	bounce := "From: MAILER-DAEMON@c.test\r\nTo: nobody@b.test\r\nSubject: A bounce\r\n\r\nundeliverable\r\n"
	if err := sendPlain(a.Addr("25"), "", []string{"nobody@b.test"}, bounce); err != nil {
		t.Fatalf("relaying a bounce: %v", err)
	}
	eventually(t, 30*time.Second, "A logs the failed bounce", func() error {
		if !strings.Contains(a.Logs(), "Dropped a failed notice without bouncing it") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	waitQueueEmpty(t, a, 10*time.Second)
	// Queued at A: the message, carol's bounce, the null-sender message; no bounce of a bounce.
	if n := strings.Count(a.Logs(), `msg="Queued message"`); n != 3 {
		t.Errorf("A queued %d messages, want 3", n)
	}
	if files, _ := os.ReadDir(carol); len(files) != 1 {
		t.Errorf("carol has %d messages, want only the first bounce", len(files))
	}
	if n := len(maildirFiles(a.Maildir("alice@a.test"))); n != 1 {
		t.Errorf("alice has %d messages, want 1", n)
	}
	if n := len(maildirFiles(b.Maildir("bob@b.test"))); n != 1 {
		t.Errorf("bob has %d messages, want 1", n)
	}
}

// The smarthost with tls: starttls (the default) must present a certificate A trusts: with
// Postfix's certificate from an unknown CA the message waits in A's queue; once A trusts the CA
// (SSL_CERT_FILE, Go's root store override) and is restarted, it goes through Postfix to B.
func TestPostfixSmarthostSTARTTLS(t *testing.T) {
	w := newWorld(t)
	b := w.server(3, "b.test", "", bob)
	w.dns.SetMX("b.test", "mx.elsewhere.test", harness.IP(99)) // nothing there: must not be used
	w.dns.SetA("smarthost.test", harness.IP(10))
	certs := testCA(t, []string{"smarthost.test"}, harness.IP(10))
	startPostfix(t, &harness.Postfix{Addr: harness.IP(10) + ":25",
		Transport: map[string]string{"b.test": "smtp:[" + b.IP + "]:25"},
		Main: []string{"smtpd_tls_security_level = may", "smtpd_tls_cert_file = " + certs + "/cert.pem",
			"smtpd_tls_key_file = " + certs + "/key.pem", "smtpd_tls_received_header = yes"}})
	a := w.server(2, "a.test", "{smarthost: {host: smarthost.test, port: 25, tls: starttls}, retry: {initialInterval: 1s, maxInterval: 2s}}", alice)

	if err := submit(a, alice, "a.test", "bob@b.test", "Over verified TLS", "Hello through Postfix"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the message waits: the smarthost's certificate is not trusted", func() error {
		ids := a.QueueIDs()
		if len(ids) != 1 {
			return fmt.Errorf("queue holds %v", ids)
		}
		raw, err := a.QueueRecord(ids[0])
		if err != nil {
			return err
		}
		var rec queueRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return err
		}
		if rec.Attempts < 2 || rec.Rcpts[0].State != "pending" {
			return fmt.Errorf("record %s", raw)
		}
		return nil
	})
	if n := len(maildirFiles(b.Maildir("bob@b.test"))); n != 0 {
		t.Fatalf("bob got %d messages over an unverified smarthost", n)
	}

	if err := a.Stop(); err != nil {
		t.Fatalf("stopping A: %v", err)
	}
	a.Env = []string{"SSL_CERT_FILE=" + certs + "/ca.pem"}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	msgs := waitInbox(t, b, bob, "b.test", 1, 30*time.Second)
	need(t, "bob's copy", msgs[0], "Subject: Over verified TLS", "by postfix-"+harness.IP(10)+".localhost (Postfix) with ESMTPS")
	waitQueueEmpty(t, a, 10*time.Second)
}
