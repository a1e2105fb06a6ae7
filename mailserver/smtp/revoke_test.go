package smtp

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// reload puts in force a copy of the server's config with its mailboxes changed by edit, as a
// reload of the manifests does.
func (s *testServer) reload(edit func([]config.Mailbox) []config.Mailbox) {
	cfg := *s.live.Load().Config()
	cfg.Mailboxes = edit(append([]config.Mailbox(nil), cfg.Mailboxes...))
	s.live.Store(config.NewDirectory(&cfg))
}

// without drops the mailbox of addr.
func without(addr string) func([]config.Mailbox) []config.Mailbox {
	return func(mbs []config.Mailbox) []config.Mailbox {
		out := mbs[:0]
		for _, mb := range mbs {
			if mb.Address != addr {
				out = append(out, mb)
			}
		}
		return out
	}
}

// newPassword gives the mailbox of addr the hash of password.
func newPassword(t *testing.T, addr, password string) func([]config.Mailbox) []config.Mailbox {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return func(mbs []config.Mailbox) []config.Mailbox {
		for i := range mbs {
			if mbs[i].Address == addr {
				mbs[i].PasswordHash = string(h)
			}
		}
		return mbs
	}
}

func revokedCount(reason string) float64 {
	return testutil.ToFloat64(metrics.SessionsRevoked.WithLabelValues("submission", reason))
}

// authenticated is a submission session over STARTTLS, logged in as alice.
func authenticated(t *testing.T, s *testServer) *rawClient {
	t.Helper()
	c := greeted(t, s.addr)
	c.startTLS(s.client)
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.test\x00alice-password"))
	c.expect(235)
	return c
}

// alice's Mailbox is deleted while her session is open: the message she sent before is
// delivered, her next MAIL gets 421 4.7.0 and the connection closes.
func TestSubmissionRevokedAtMail(t *testing.T) {
	s := startServer(t, true, false)
	c := authenticated(t, s)
	c.cmd("MAIL FROM:<alice@example.test>")
	c.expect(250)
	c.cmd("RCPT TO:<bob@example.test>")
	c.expect(250)
	c.cmd("DATA")
	c.expect(354)
	c.write(message("before", "sent before the removal") + ".\r\n")
	c.expect(250)
	before := revokedCount(metrics.RevokedRemoved)

	s.reload(without("alice@example.test"))
	c.cmd("MAIL FROM:<alice@example.test>")
	c.expect(421, "4.7.0")
	c.expectClosed()
	if got := s.only("bob@example.test"); !strings.Contains(got, "Subject: before") {
		t.Fatalf("bob's mailbox:\n%s", got)
	}
	if d := revokedCount(metrics.RevokedRemoved) - before; d != 1 {
		t.Errorf("kubemail_sessions_revoked_total{server=submission,reason=removed} grew by %v, want 1", d)
	}
	s.waitLog("Revoked session", "server=submission", "user=alice@example.test", "reason=removed", "command=MAIL")
}

// alice's password is rotated in the middle of a transaction: her next RCPT gets 421, and a
// client that pipelined on to DATA gets no 250 for it; nothing is delivered.
func TestSubmissionRevokedAtRcpt(t *testing.T) {
	s := startServer(t, true, false)
	c := authenticated(t, s)
	c.cmd("MAIL FROM:<alice@example.test>")
	c.expect(250)
	c.cmd("RCPT TO:<bob@example.test>")
	c.expect(250)
	before := revokedCount(metrics.RevokedCredentials)

	s.reload(newPassword(t, "alice@example.test", "alice-new-password"))
	c.write("RCPT TO:<postmaster@example.test>\r\nDATA\r\n")
	c.expect(421, "4.7.0")
	for {
		code, text, err := c.reply()
		if err != nil {
			break // closed
		}
		// go-smtp still holds the RCPT accepted before, so it may answer the pipelined DATA
		// with 354 itself; the data then gets 421 too.
		if code < 300 {
			t.Fatalf("got %d %q after the 421, want no 2xx before the close", code, text)
		}
	}
	if got := s.delivered("bob@example.test"); len(got) != 0 {
		t.Fatalf("bob got %d messages after alice's session was revoked", len(got))
	}
	if d := revokedCount(metrics.RevokedCredentials) - before; d != 1 {
		t.Errorf("kubemail_sessions_revoked_total{server=submission,reason=credentials} grew by %v, want 1", d)
	}
	// The new password works, the old one does not.
	c = greeted(t, s.addr)
	c.startTLS(s.client)
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.test\x00alice-password"))
	c.expect(535, "5.7.8")
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.test\x00alice-new-password"))
	c.expect(235)
}

// A reload between RCPT and DATA (or the first BDAT chunk): the message is read, refused with
// 421, and not delivered; the connection closes.
func TestSubmissionRevokedAtData(t *testing.T) {
	for _, bdat := range []bool{false, true} {
		name := map[bool]string{false: "DATA", true: "BDAT"}[bdat]
		t.Run(name, func(t *testing.T) {
			s := startServer(t, true, false)
			c := authenticated(t, s)
			c.cmd("MAIL FROM:<alice@example.test>")
			c.expect(250)
			c.cmd("RCPT TO:<bob@example.test>")
			c.expect(250)
			s.reload(without("alice@example.test"))
			msg := message("after", "sent after the removal")
			if bdat {
				c.cmd("BDAT " + strconv.Itoa(len(msg)) + " LAST")
				c.write(msg)
			} else {
				c.cmd("DATA")
				c.expect(354)
				c.write(msg + ".\r\n")
			}
			c.expect(421, "4.7.0")
			c.expectClosed()
			if got := s.delivered("bob@example.test"); len(got) != 0 {
				t.Fatalf("bob got %d messages after alice's session was revoked", len(got))
			}
			s.waitLog("Revoked session", "user=alice@example.test", "reason=removed", "command=DATA")
		})
	}
}

// go-smtp's client on port 465 (implicit TLS): a reload that leaves alice alone (bob's password
// rotated, a new alias of hers, a quota) does not disturb her; one that removes her does.
func TestSubmissionRevokeLeavesOthersAlone(t *testing.T) {
	s := startServer(t, true, true)
	c, err := gosmtp.DialTLS(s.addr, s.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.test", "alice-password")); err != nil {
		t.Fatal(err)
	}
	send := func(subject string) error {
		return c.SendMail("alice@example.test", []string{"bob@example.test"}, strings.NewReader(message(subject, "hello")))
	}
	if err := send("one"); err != nil {
		t.Fatal(err)
	}
	s.reload(newPassword(t, "bob@example.test", "bob-new-password"))
	s.reload(func(mbs []config.Mailbox) []config.Mailbox {
		mbs[0].Aliases = append(mbs[0].Aliases, "info@example.test")
		mbs[0].Quota = 1 << 30
		return mbs
	})
	if err := send("two"); err != nil {
		t.Fatalf("alice after a reload that left her mailbox alone: %v", err)
	}
	s.reload(without("alice@example.test"))
	err = send("three")
	var serr *gosmtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != 421 || serr.EnhancedCode != (gosmtp.EnhancedCode{4, 7, 0}) {
		t.Fatalf("alice after her removal: %v, want 421 4.7.0", err)
	}
	if got := s.delivered("bob@example.test"); len(got) != 2 {
		t.Fatalf("bob has %d messages, want the 2 accepted before the removal", len(got))
	}
}
