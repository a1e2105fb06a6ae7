package auth

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kubemail/kubemail/mailserver/config"
)

func TestHashVerify(t *testing.T) {
	h, err := Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || !IsHash(h) || CheckHash(h) != nil {
		t.Errorf("hash %q is not a well-formed argon2id PHC string", h)
	}
	if !Verify(h, "correct horse") || Verify(h, "correct horsf") || Verify(h, "") {
		t.Error("argon2id verify")
	}
	h2, _ := Hash("correct horse")
	if h2 == h {
		t.Error("two hashes of one password share a salt")
	}
	b, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if !IsHash(string(b)) || !Verify(string(b), "s3cret") || Verify(string(b), "s3cres") {
		t.Error("bcrypt verify")
	}
	for _, bad := range []string{"$argon2id$v=19$m=0,t=1,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=18$m=1024,t=1,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5", "$argon2id$", "plain"} {
		if CheckHash(bad) == nil || Verify(bad, "x") {
			t.Errorf("malformed hash %q accepted", bad)
		}
	}
}

func TestHasher(t *testing.T) {
	hash := NewHasher()
	h1, err := hash("ns/alice", "pw")
	if err != nil || !Verify(h1, "pw") {
		t.Fatalf("hash = %q, %v", h1, err)
	}
	if h2, _ := hash("ns/alice", "pw"); h2 != h1 {
		t.Error("an unchanged password was hashed again")
	}
	if h3, _ := hash("ns/alice", "pw2"); h3 == h1 || !Verify(h3, "pw2") {
		t.Error("a changed password kept its old hash")
	}
	b, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if h, _ := hash("ns/bob", string(b)); h != string(b) {
		t.Error("a hash in the Secret is used as it is")
	}
	if _, err := hash("ns/bob", "$argon2id$v=19$broken"); err == nil {
		t.Error("a malformed hash in the Secret is an error")
	}
}

func TestAuthenticateSlowsRepeatedFailures(t *testing.T) {
	h, _ := Hash("pw")
	live := config.NewLive(config.NewDirectory(&config.Config{
		Domains:   []config.Domain{{Name: "example.test"}},
		Mailboxes: []config.Mailbox{{Address: "alice@example.test", Aliases: []string{"al@example.test"}, PasswordHash: h}},
	}))
	a := NewAuthenticator(live)
	a.FailureDelay, a.MaxFailureDelay = 20*time.Millisecond, 80*time.Millisecond
	ctx := context.Background()
	client := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234}
	other := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 1234}

	if mb, err := a.Authenticate(ctx, client, "Alice@Example.test", "pw"); err != nil || mb.Address != "alice@example.test" {
		t.Fatalf("good login: %v", err)
	}
	for _, bad := range [][2]string{{"alice@example.test", "wrong"}, {"al@example.test", "pw"}, {"nobody@example.test", "pw"}} {
		if _, err := a.Authenticate(ctx, client, bad[0], bad[1]); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("login %v: err = %v", bad, err)
		}
	}
	// The delay doubles per failure up to the cap, per client address.
	if d := a.recordFailure(clientAddr(client), time.Now()); d != 80*time.Millisecond {
		t.Errorf("4th failure delay = %v, want the 80ms cap", d)
	}
	if d := a.recordFailure(clientAddr(other), time.Now()); d != 20*time.Millisecond {
		t.Errorf("another client's first failure delay = %v", d)
	}
	if d := a.recordFailure(clientAddr(other), time.Now().Add(time.Hour)); d != 20*time.Millisecond {
		t.Errorf("failure after the window = %v, want the base delay again", d)
	}
	// A client that gives up (closes the connection) is not held.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.Authenticate(cctx, client, "alice@example.test", "wrong"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
