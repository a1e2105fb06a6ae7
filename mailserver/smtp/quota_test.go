package smtp

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/store"
)

const bob = "bob@example.test"

// setQuota gives a mailbox a quota, as a config reload would: the next transaction uses it.
func (s *testServer) setQuota(addr string, quota int64) {
	s.t.Helper()
	cfg := *s.live.Load().Config()
	cfg.Mailboxes = slices.Clone(cfg.Mailboxes)
	for i := range cfg.Mailboxes {
		if cfg.Mailboxes[i].Address == addr {
			cfg.Mailboxes[i].Quota = quota
		}
	}
	s.live.Store(config.NewDirectory(&cfg))
}

func (s *testServer) usage(addr string) store.Usage {
	s.t.Helper()
	u, err := s.store.Usage(addr)
	if err != nil {
		s.t.Fatal(err)
	}
	return u
}

// expungeAll deletes every message of addr's INBOX, as a user would over IMAP.
func (s *testServer) expungeAll(addr string) {
	s.t.Helper()
	acct, err := s.store.Account(addr)
	if err != nil {
		s.t.Fatal(err)
	}
	inbox, err := acct.Folder("INBOX")
	if err != nil {
		s.t.Fatal(err)
	}
	if err := inbox.Refresh(); err != nil {
		s.t.Fatal(err)
	}
	var uids []uint32
	inbox.View(func(_, _ uint32, msgs []store.Message) {
		for _, m := range msgs {
			uids = append(uids, m.UID)
		}
	})
	if err := inbox.StoreFlags(uids, store.FlagsAdd, []string{`\Deleted`}, nil, nil); err != nil {
		s.t.Fatal(err)
	}
	if _, err := inbox.Expunge(nil); err != nil {
		s.t.Fatal(err)
	}
}

func quotaRefusals(server, command string) float64 {
	return testutil.ToFloat64(metrics.QuotaRefusals.WithLabelValues(server, command))
}

// sized is a message of about n bytes (one more at most), in lines of at most 78 characters.
func sized(subject string, n int) string {
	var b strings.Builder
	b.WriteString(message(subject, ""))
	for b.Len() < n {
		line := min(n-b.Len()-2, 76)
		b.WriteString(strings.Repeat("x", max(line, 0)) + "\r\n")
	}
	return b.String()
}

// A full mailbox gets 452 4.2.2 at RCPT, the other recipients of the transaction get the message,
// the refusals do not end the connection, and once the user deletes mail delivery works again.
func TestQuotaFullMailboxRefusedAtRCPT(t *testing.T) {
	s := startServer(t, false, false)
	if err := sendMail(s.addr, nil, "sender@remote.test", []string{bob}, sized("first", 1000)); err != nil {
		t.Fatal(err)
	}
	s.setQuota(bob, s.usage(bob).Bytes) // exactly full
	before := quotaRefusals("mx", "RCPT")

	c := greeted(t, s.addr)
	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)
	for range maxRejectedRecipients + 5 {
		c.cmd("RCPT TO:<bob+lists@example.test>")
		c.expect(452, "4.2.2 Mailbox full")
	}
	c.cmd("RCPT TO:<alice@example.test>")
	c.expect(250)
	c.cmd("DATA")
	c.expect(354)
	c.write(message("second", "for alice only") + ".\r\n")
	c.expect(250)
	if n := len(s.maildir(bob)); n != 1 {
		t.Errorf("bob holds %d messages, want only the first", n)
	}
	s.only("alice@example.test")
	if d := quotaRefusals("mx", "RCPT") - before; d != maxRejectedRecipients+5 {
		t.Errorf("kubemail_mailbox_quota_refusals_total{mx,RCPT} grew by %v, want %d", d, maxRejectedRecipients+5)
	}
	s.waitLog("Rejected recipient", "rcpt=bob+lists@example.test", "code=452", `reason="mailbox full"`)

	s.expungeAll(bob)
	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)
	c.cmd("RCPT TO:<bob@example.test>")
	c.expect(250)
	c.cmd("DATA")
	c.expect(354)
	c.write(message("third", "room again") + ".\r\n")
	c.expect(250)
	// The INBOX is open in the store now: the message may be in new/ or already in cur/.
	if b := s.only(bob); !strings.Contains(b, "Subject: third") {
		t.Errorf("bob's message is not the third:\n%s", b)
	}
}

// At the end of the data a message that would pass a recipient's quota is refused for the whole
// transaction with 452 4.2.2 and stored nowhere; with SIZE= the same refusal comes at RCPT for
// that recipient alone; a message larger than the whole quota gets 552 5.2.3.
func TestQuotaAtEndOfData(t *testing.T) {
	s := startServer(t, false, false)
	const alice = "alice@example.test"
	if err := sendMail(s.addr, nil, "sender@remote.test", []string{bob}, sized("first", 1500)); err != nil {
		t.Fatal(err)
	}
	s.setQuota(bob, 3000)
	before := quotaRefusals("mx", "DATA")

	send := func(size int64, rcpts ...string) *rawClient {
		t.Helper()
		c := greeted(t, s.addr)
		mail := "MAIL FROM:<sender@remote.test>"
		if size > 0 {
			mail += fmt.Sprintf(" SIZE=%d", size)
		}
		c.cmd(mail)
		c.expect(250)
		for _, r := range rcpts {
			c.cmd("RCPT TO:<" + r + ">")
			c.expect(250)
		}
		return c
	}
	data := func(c *rawClient, msg string, code int, parts ...string) {
		t.Helper()
		c.cmd("DATA")
		c.expect(354)
		c.write(msg + ".\r\n")
		c.expect(code, parts...)
	}

	// 2000 more bytes do not fit: nobody gets a copy, alice included, so a retry duplicates nothing.
	data(send(0, bob), sized("alone", 2000), 452, "4.2.2 Mailbox full")
	data(send(0, alice, bob), sized("both", 2000), 452, "4.2.2 Mailbox full")
	c := greeted(t, s.addr)
	c.cmd("MAIL FROM:<sender@remote.test>")
	c.expect(250)
	c.cmd("RCPT TO:<" + bob + ">")
	c.expect(250)
	msg := sized("chunked", 2000)
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg), msg))
	c.expect(452, "4.2.2")
	if n := len(s.maildir(bob)); n != 1 {
		t.Errorf("bob holds %d messages after the refusals, want 1", n)
	}
	if n := len(s.maildir(alice)); n != 0 {
		t.Errorf("alice holds %d messages after the refused transaction, want 0", n)
	}

	// The retry declares SIZE=: bob is refused at RCPT, alice gets the message once.
	c = greeted(t, s.addr)
	c.cmd("MAIL FROM:<sender@remote.test> SIZE=2000")
	c.expect(250)
	c.cmd("RCPT TO:<" + alice + ">")
	c.expect(250)
	c.cmd("RCPT TO:<" + bob + ">")
	c.expect(452, "4.2.2")
	data(c, sized("both", 2000), 250)
	s.only(alice)

	// Larger than bob's whole quota: never deliverable to him.
	c = greeted(t, s.addr)
	c.cmd("MAIL FROM:<sender@remote.test> SIZE=4000")
	c.expect(250)
	c.cmd("RCPT TO:<" + bob + ">")
	c.expect(552, "5.2.3")
	data(send(0, bob), sized("huge", 4000), 552, "5.2.3")
	data(send(0, alice, bob), sized("huge", 4000), 452, "4.2.2") // alice could take it

	if n := len(s.maildir(bob)); n != 1 {
		t.Errorf("bob holds %d messages, want 1", n)
	}
	if d := quotaRefusals("mx", "DATA") - before; d != 5 {
		t.Errorf("kubemail_mailbox_quota_refusals_total{mx,DATA} grew by %v, want 5", d)
	}
	s.waitLog("Rejected message", "code=452", "mailbox full: bob@example.test")
}

// Concurrent senders never take a mailbox past its quota together: exactly the messages that
// fit are accepted, the rest get 452 4.2.2.
func TestQuotaConcurrentSenders(t *testing.T) {
	s := startServer(t, false, false)
	msg := sized("probe", 2000)
	if err := sendMail(s.addr, nil, "sender@remote.test", []string{"gina@many.test"}, msg); err != nil {
		t.Fatal(err)
	}
	one := s.usage("gina@many.test").Bytes
	const fits = 4
	s.setQuota(bob, fits*one+one/2)
	var accepted, full atomic.Int64
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			err := sendMail(s.addr, nil, "sender@remote.test", []string{bob}, sized(fmt.Sprint("c", i), 2000))
			var serr *gosmtp.SMTPError
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.As(err, &serr) && serr.Code == 452 && serr.EnhancedCode == (gosmtp.EnhancedCode{4, 2, 2}):
				full.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if accepted.Load() != fits || full.Load() != 12-fits {
		t.Errorf("%d accepted and %d refused as full, want %d and %d", accepted.Load(), full.Load(), fits, 12-fits)
	}
	if n := len(s.maildir(bob)); n != fits {
		t.Errorf("bob holds %d messages, want %d", n, fits)
	}
}

// A submitted message to a local mailbox that is full gets the same 452 4.2.2 at RCPT.
func TestQuotaOnSubmission(t *testing.T) {
	s := startServer(t, true, false)
	s.setQuota(bob, 1)
	if _, err := s.store.Deliver(t.Context(), []string{bob}, nil, strings.NewReader(message("notice", "x"))); err != nil {
		t.Fatal(err)
	}
	before := quotaRefusals("submission", "RCPT")
	c := greeted(t, s.addr)
	c.startTLS(s.client)
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.test\x00alice-password"))
	c.expect(235)
	c.cmd("MAIL FROM:<alice@example.test>")
	c.expect(250)
	c.cmd("RCPT TO:<bob@example.test>")
	c.expect(452, "4.2.2 Mailbox full")
	if d := quotaRefusals("submission", "RCPT") - before; d != 1 {
		t.Errorf("kubemail_mailbox_quota_refusals_total{submission,RCPT} grew by %v, want 1", d)
	}
}
