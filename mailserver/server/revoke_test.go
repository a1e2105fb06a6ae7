package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// wire records an IMAP client's connection, to see the server's untagged BYE (imapclient just
// closes).
type wire struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *wire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *wire) bye() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range strings.Split(w.b.String(), "\r\n") {
		if strings.HasPrefix(line, "* BYE ") {
			return line
		}
	}
	return ""
}

// idleSession logs in over IMAP STARTTLS, selects INBOX and starts IDLE, as a phone does.
func idleSession(t *testing.T, addr, user, password string) (*imapclient.Client, *wire, *imapclient.IdleCommand) {
	t.Helper()
	w := &wire{}
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}, DebugWriter: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("%s: %v", user, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	return c, w, idle
}

// waitBye waits (generously) for the server's BYE on c and the connection's close.
func waitBye(t *testing.T, who string, c *imapclient.Client, w *wire, want string) {
	t.Helper()
	start := time.Now()
	defer func() {
		t.Logf("%s: closed %v after the manifest was written", who, time.Since(start).Round(time.Millisecond))
	}()
	select {
	case <-c.Closed():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the session is still open 30s after the reload", who)
	}
	if line := w.bye(); !strings.Contains(line, want) {
		t.Fatalf("%s: got %q before the close, want a BYE saying %q", who, line, want)
	}
}

// submitter is a submission session over STARTTLS, logged in.
func submitter(t *testing.T, addr, user, password string) *gosmtp.Client {
	t.Helper()
	c, err := gosmtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
		t.Fatalf("%s: %v", user, err)
	}
	return c
}

func is421(err error) bool {
	var serr *gosmtp.SMTPError
	return errors.As(err, &serr) && serr.Code == 421 && serr.EnhancedCode == gosmtp.EnhancedCode{4, 7, 0}
}

// Through the manifests and the real reload: carol's password Secret is rotated, then her
// Mailbox deleted with its mail purged. Each time her IMAP session in IDLE gets BYE and her
// submission session 421 at its next MAIL; alice, in IDLE all along, is never disturbed, and
// the message carol sent her before is there.
func TestReloadRevokesSessions(t *testing.T) {
	manifests := copySamples(t)
	carolFile := filepath.Join(manifests, "carol.yaml")
	writeFile(t, carolFile, carol)
	srv := startServer(t, manifests)
	alice, aliceWire, aliceIdle := idleSession(t, srv.addrs["imap"], "alice@example.test", "alice-password")
	carolIMAP, carolWire, _ := idleSession(t, srv.addrs["imap"], "carol@example.test", "carol-password")
	carolSMTP := submitter(t, srv.addrs["submission"], "carol@example.test", "carol-password")
	msg := "From: carol@example.test\r\nTo: alice@example.test\r\nSubject: before the reload\r\n\r\nhello\r\n"
	if err := carolSMTP.SendMail("carol@example.test", []string{"alice@example.test"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("carol's message before the reload: %v", err)
	}

	// The password is rotated.
	writeFile(t, carolFile, strings.Replace(carol, "carol-password", "carol-new-password", 1))
	waitBye(t, "carol's IMAP session after her password changed", carolIMAP, carolWire, "password was changed")
	if err := carolSMTP.SendMail("carol@example.test", []string{"alice@example.test"}, strings.NewReader(msg)); !is421(err) {
		t.Fatalf("carol's submission session after her password changed: %v, want 421 4.7.0", err)
	}
	if err := imapLogin(srv.addrs["imap"], "carol@example.test", "carol-password"); err == nil {
		t.Fatal("carol logs in with her old password")
	}
	carolIMAP, carolWire, _ = idleSession(t, srv.addrs["imap"], "carol@example.test", "carol-new-password")

	// The Mailbox is deleted and its mail purged.
	if err := os.Remove(carolFile); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(manifests, "example-test.yaml"), purgeDomain("carol@example.test"))
	waitBye(t, "carol's IMAP session after her Mailbox was deleted", carolIMAP, carolWire, "no longer exists")

	for _, line := range []string{
		`msg="Revoked IMAP session" mailbox=carol@example.test`,
		`reason=credentials`,
		`reason=removed`,
		`msg="Revoked session" server=submission`,
	} {
		if !strings.Contains(srv.log.String(), line) {
			t.Errorf("the log lacks %q:\n%s", line, srv.log.String())
		}
	}
	// alice slept through both reloads in IDLE: her session still works and has carol's message.
	if line := aliceWire.bye(); line != "" {
		t.Fatalf("alice got %q", line)
	}
	if err := sendMail(srv.addrs["smtp"], "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alice's IDLE reports the new mail", func() error {
		if mb := alice.Mailbox(); mb == nil || mb.NumMessages != 2 {
			return fmt.Errorf("alice's INBOX: %+v", mb)
		}
		return nil
	})
	if err := aliceIdle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := aliceIdle.Wait(); err != nil {
		t.Fatalf("alice's IDLE: %v", err)
	}
	msgs, err := alice.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "before the reload" {
		t.Fatalf("alice's first message: %+v, %v; want carol's, sent before the reload", msgs, err)
	}
}
