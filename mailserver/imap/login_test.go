package imap

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

func TestLoginRefusedBeforeTLS(t *testing.T) {
	e := newEnv(t)
	c, err := imapclient.DialInsecure(e.plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) || caps.Has(imap.Cap("AUTH=PLAIN")) {
		t.Errorf("capabilities before TLS: %v, want LOGINDISABLED and STARTTLS without AUTH=PLAIN", caps)
	}
	expectCode(t, "LOGIN before TLS", c.Login(alice, alicePassword).Wait(), imap.ResponseCodePrivacyRequired)
	expectCode(t, "AUTHENTICATE before TLS", c.Authenticate(sasl.NewPlainClient("", alice, alicePassword)), imap.ResponseCodePrivacyRequired)
}

func TestLoginAfterSTARTTLS(t *testing.T) {
	e := newEnv(t)
	c, err := imapclient.DialStartTLS(e.plain, e.clientOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice, alicePassword).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticatePlainAndWrongPasswords(t *testing.T) {
	e := newEnv(t)
	dial := func() *imapclient.Client {
		c, err := imapclient.DialTLS(e.implicit, e.clientOptions(nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial()
	expectCode(t, "LOGIN with a wrong password", c.Login(alice, "nope").Wait(), imap.ResponseCodeAuthenticationFailed)
	expectCode(t, "LOGIN of an unknown user", c.Login("mallory@example.test", alicePassword).Wait(), imap.ResponseCodeAuthenticationFailed)
	expectCode(t, "LOGIN with an alias", c.Login("postmaster@example.test", alicePassword).Wait(), imap.ResponseCodeAuthenticationFailed)
	expectCode(t, "AUTHENTICATE PLAIN with a wrong password", c.Authenticate(sasl.NewPlainClient("", bob, alicePassword)), imap.ResponseCodeAuthenticationFailed)
	if err := c.Authenticate(sasl.NewPlainClient("", bob, bobPassword)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Login names are the primary address in any case.
	if err := dial().Login("ALICE@Example.Test", alicePassword).Wait(); err != nil {
		t.Errorf("LOGIN with the address in upper case: %v", err)
	}
}

func TestGarbageBeforeLoginClosesConnection(t *testing.T) {
	e := newEnv(t)
	conn, err := net.Dial("tcp", e.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	if _, err := conn.Read(buf); err != nil { // greeting
		t.Fatal(err)
	}
	conn.Write([]byte("GET / HTTP/1.1\r\n"))
	for {
		if _, err := conn.Read(buf); err != nil {
			return // closed, as it should be
		}
	}
}

// A login whose password still checks (the config in force has the mailbox) but whose mailbox the
// store has removed, as when the password was checked just before a reload purged it, is refused
// like a bad password, and makes no Maildir; the session stays usable for another login.
func TestLoginToRemovedMailbox(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.RemoveMailbox(bob, filepath.Join(e.dataDir, "trash")); err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialTLS(e.implicit, e.clientOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectCode(t, "LOGIN to a removed mailbox", c.Login(bob, bobPassword).Wait(), imap.ResponseCodeAuthenticationFailed)
	expectCode(t, "AUTHENTICATE PLAIN to a removed mailbox", c.Authenticate(sasl.NewPlainClient("", bob, bobPassword)), imap.ResponseCodeAuthenticationFailed)
	if _, err := os.Stat(filepath.Join(e.dataDir, "mail", "example.test", "bob")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused login made bob a Maildir: %v", err)
	}
	if err := c.Login(alice, alicePassword).Wait(); err != nil {
		t.Fatalf("LOGIN as alice after the refusals: %v", err)
	}
	e.store.ReviveMailboxes([]string{bob})
	if err := e.login(bob, bobPassword).Logout().Wait(); err != nil {
		t.Errorf("bob's LOGIN once his address is revived: %v", err)
	}
}
