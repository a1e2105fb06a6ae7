package relay

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/test/relay/harness"
)

// alice@a.test submits to bob@b.test at server A; A finds B by its MX record and delivers over
// port 25; bob reads it over IMAP on B. A recipient B refuses with 550 comes back to alice as a
// DSN in her INBOX.
func TestSubmissionReachesOtherServer(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "", alice)
	b := w.server(3, "b.test", "", bob)

	if err := submit(a, alice, "a.test", "bob@b.test", "Across servers", "Hello Bob"); err != nil {
		t.Fatal(err)
	}
	msgs := waitInbox(t, b, bob, "b.test", 1, 30*time.Second)
	need(t, "bob's copy", msgs[0], "Subject: Across servers", "Hello Bob", "Message-ID:", "Date:", "by mx.a.test", "by mx.b.test")
	waitQueueEmpty(t, a, 10*time.Second)

	if err := submit(a, alice, "a.test", "nobody@b.test", "To nobody", "Is anyone there?"); err != nil {
		t.Fatal(err)
	}
	dsn := waitInbox(t, a, alice, "a.test", 1, 30*time.Second)[0]
	need(t, "alice's bounce", dsn, "multipart/report", "report-type=delivery-status", "Final-Recipient: rfc822; nobody@b.test",
		"Action: failed", "Status: 5.1.1", "Remote-MTA: dns;", "Subject: To nobody")
	if !strings.Contains(dsn, "Return-Path: <>") && !strings.Contains(dsn, "MAILER-DAEMON") {
		t.Errorf("the bounce does not come from the null sender or MAILER-DAEMON:\n%s", dsn)
	}
	waitQueueEmpty(t, a, 10*time.Second)
	if msgs, err := inbox(b, bob, "b.test"); err != nil || len(msgs) != 1 {
		t.Errorf("bob has %d messages (%v), want still 1", len(msgs), err)
	}
}

// queueRecord is the part of a queue metadata record the tests read (mailserver/queue doc).
type queueRecord struct {
	Attempts int `json:"attempts"`
	Rcpts    []struct {
		Addr  string `json:"addr"`
		State string `json:"state"`
		Code  int    `json:"code"`
	} `json:"rcpts"`
}

// While B is down the message waits in A's queue and is retried, alice gets one delay notice
// (retry.delayWarningAfter); once B is back the message arrives, exactly once, and alice hears
// nothing more.
func TestQueuedWhileServerDown(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "{retry: {initialInterval: 1s, maxInterval: 2s, delayWarningAfter: 2s}}", alice)
	b := w.server(3, "b.test", "", bob)
	if err := b.Stop(); err != nil {
		t.Fatalf("stopping B: %v", err)
	}

	if err := submit(a, alice, "a.test", "bob@b.test", "While you were down", "Hello again"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the message is queued and tried three times", func() error {
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
			return fmt.Errorf("%w: %s", err, raw)
		}
		if rec.Attempts < 3 || len(rec.Rcpts) != 1 || rec.Rcpts[0].State != "pending" {
			return fmt.Errorf("record %s", raw)
		}
		return nil
	})
	notice := waitInbox(t, a, alice, "a.test", 1, 10*time.Second)[0]
	need(t, "alice's delay notice", notice, "multipart/report", "Final-Recipient: rfc822; bob@b.test", "Action: delayed",
		"Status: 4.4.1", "Subject: While you were down")

	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	msgs := waitInbox(t, b, bob, "b.test", 1, 30*time.Second)
	need(t, "bob's copy", msgs[0], "Subject: While you were down")
	waitQueueEmpty(t, a, 10*time.Second)
	// Nothing is left to send it again: the count is final.
	if msgs, err := inbox(b, bob, "b.test"); err != nil || len(msgs) != 1 {
		t.Errorf("bob has %d messages (%v), want exactly 1", len(msgs), err)
	}
	if n := len(maildirFiles(a.Maildir("alice@a.test"))); n != 1 {
		t.Errorf("alice has %d notices, want only the one delay notice", n)
	}
}

// One message to recipients at two servers, one of them down: the one up gets it at once, the
// retries go only to the other, and each gets exactly one copy.
func TestPartialDeliveryRetriesOnlyThePending(t *testing.T) {
	w := newWorld(t)
	carol := harness.Mailbox{Local: "carol", Password: "carol-password"}
	a := w.server(2, "a.test", "{retry: {initialInterval: 1s, maxInterval: 2s}}", alice)
	b := w.server(3, "b.test", "", bob)
	c := w.server(4, "c.test", "", carol)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	err := sendPlainAuth(a, alice, "a.test", []string{"bob@b.test", "carol@c.test"},
		"From: alice@a.test\r\nTo: bob@b.test, carol@c.test\r\nSubject: To both\r\n\r\nHi both\r\n")
	if err != nil {
		t.Fatal(err)
	}
	need(t, "bob's copy", waitInbox(t, b, bob, "b.test", 1, 30*time.Second)[0], "Subject: To both")
	eventually(t, 30*time.Second, "carol is pending after three attempts, bob delivered", func() error {
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
		states := map[string]string{}
		for _, r := range rec.Rcpts {
			states[r.Addr] = r.State
		}
		if rec.Attempts < 3 || states["bob@b.test"] != "delivered" || states["carol@c.test"] != "pending" {
			return fmt.Errorf("record %s", raw)
		}
		return nil
	})
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	need(t, "carol's copy", waitInbox(t, c, carol, "c.test", 1, 30*time.Second)[0], "Subject: To both")
	waitQueueEmpty(t, a, 10*time.Second)
	if n := len(maildirFiles(b.Maildir("bob@b.test"))); n != 1 {
		t.Errorf("bob has %d copies, want 1", n)
	}
	if n := len(maildirFiles(c.Maildir("carol@c.test"))); n != 1 {
		t.Errorf("carol has %d copies, want 1", n)
	}
}

// A message still undeliverable when its lifetime (RelayPolicy retry.lifetime) ends bounces
// with status 5.4.7.
func TestLifetimeExpiryBounces(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "{retry: {initialInterval: 1s, maxInterval: 2s, lifetime: 5s}}", alice)
	// b.test's MX has an address where nothing listens.
	w.dns.SetMX("b.test", "mx.b.test", a.IP[:strings.LastIndexByte(a.IP, '.')]+".3")

	start := time.Now()
	if err := submit(a, alice, "a.test", "bob@b.test", "Into the void", "Anyone?"); err != nil {
		t.Fatal(err)
	}
	dsn := waitInbox(t, a, alice, "a.test", 1, 30*time.Second)[0]
	if took := time.Since(start); took < 5*time.Second {
		t.Errorf("bounced after %v, before the 5s lifetime", took)
	}
	need(t, "alice's bounce", dsn, "multipart/report", "Final-Recipient: rfc822; bob@b.test", "Action: failed",
		"Status: 5.4.7", "Subject: Into the void")
	waitQueueEmpty(t, a, 10*time.Second)
}

// A domain with a null MX (RFC 7505) and a domain that does not exist bounce at the first
// attempt, without waiting for retries (RelayPolicy defaults: the first retry would be minutes
// away).
func TestUndeliverableDomainsBounceAtOnce(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "", alice)
	w.dns.SetNullMX("nomail.test")

	if err := submit(a, alice, "a.test", "bob@nomail.test", "To a null MX", "x"); err != nil {
		t.Fatal(err)
	}
	dsn := waitInbox(t, a, alice, "a.test", 1, 30*time.Second)[0]
	need(t, "the null MX bounce", dsn, "Final-Recipient: rfc822; bob@nomail.test", "Action: failed", "Status: 5.1.10",
		"Subject: To a null MX")
	waitQueueEmpty(t, a, 10*time.Second)

	if err := submit(a, alice, "a.test", "bob@nowhere.test", "To no domain", "x"); err != nil {
		t.Fatal(err)
	}
	msgs := waitInbox(t, a, alice, "a.test", 2, 30*time.Second)
	var found bool
	for _, m := range msgs {
		if strings.Contains(m, "Subject: To no domain") {
			found = true
			need(t, "the NXDOMAIN bounce", m, "Final-Recipient: rfc822; bob@nowhere.test", "Action: failed", "Status: 5.4.4")
		}
	}
	if !found {
		t.Errorf("no bounce for bob@nowhere.test among:\n%s", strings.Join(msgs, "\n----\n"))
	}
	waitQueueEmpty(t, a, 10*time.Second)
}

// A 20 MiB message goes through A's queue to B intact (the default limit is 25 MiB).
func TestLargeMessage(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "", alice)
	b := w.server(3, "b.test", "", bob)
	load := &harness.Load{Addr: a.Addr(harness.SubmissionPort), STARTTLS: true, Username: "alice@a.test", Password: alice.Password,
		From: "alice@a.test", To: func(int) string { return "bob@b.test" }, Tag: "large", Messages: 1, Sessions: 1, Size: 20 << 20}
	if res := load.Run(time.Now().Add(2 * time.Minute)); !res.Accepted[0] {
		t.Fatalf("submitting 20 MiB: %v", res.Errors)
	}
	var files []string
	eventually(t, 2*time.Minute, "bob has the large message", func() error {
		if files = maildirFiles(b.Maildir("bob@b.test")); len(files) != 1 {
			return fmt.Errorf("%d messages", len(files))
		}
		return nil
	})
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	_, sent, _ := strings.Cut(load.Message(0), "\r\n\r\n")
	if body != sent {
		t.Errorf("bob's body (%d bytes) differs from the one sent (%d bytes)", len(body), len(sent))
	}
	waitQueueEmpty(t, a, 10*time.Second)
}

// RelayPolicy rateLimit: alice may submit 3 messages a minute, over 587 and 465 together; the
// fourth MAIL gets 450 4.7.1.
func TestSendingRateLimit(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "{rateLimit: {messagesPerMinutePerSender: 3}}", alice)
	w.server(3, "b.test", "", bob)
	for i := range 3 {
		if err := submit(a, alice, "a.test", "bob@b.test", fmt.Sprintf("Message %d", i), "x"); err != nil {
			t.Fatalf("message %d within the limit: %v", i, err)
		}
	}
	c, err := gosmtp.DialTLS(a.Addr(harness.SubmissionsPort), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@a.test", alice.Password)); err != nil {
		t.Fatal(err)
	}
	err = c.Mail("alice@a.test", nil)
	var serr *gosmtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != 450 || serr.EnhancedCode != (gosmtp.EnhancedCode{4, 7, 1}) {
		t.Errorf("the fourth MAIL on 465: %v, want 450 4.7.1", err)
	}
}
