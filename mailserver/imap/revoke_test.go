package imap

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// newRevokeEnv is newEnv with a session registry, as `kubemail server` runs it; wrap, when not
// nil, wraps the authenticator.
func newRevokeEnv(t *testing.T, wrap func(Authenticator) Authenticator) (*env, *Sessions) {
	t.Helper()
	sessions := NewSessions()
	e := startEnvWith(t, t.TempDir(), func(o *Options) {
		o.Sessions = sessions
		if wrap != nil {
			o.Auth = wrap(o.Auth)
		}
	})
	return e, sessions
}

// transcript records what an imapclient reads and writes, to see the server's untagged BYE,
// which imapclient does not report.
type transcript struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *transcript) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// bye returns the server's BYE line, or "".
func (w *transcript) bye() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range strings.Split(w.b.String(), "\r\n") {
		if strings.HasPrefix(line, "* BYE ") {
			return line
		}
	}
	return ""
}

// watchedLogin logs in over IMAPS with a transcript of the connection.
func (e *env) watchedLogin(user, password string) (*imapclient.Client, *transcript) {
	e.t.Helper()
	w := &transcript{}
	opts := e.clientOptions(nil)
	opts.DebugWriter = w
	c, err := imapclient.DialTLS(e.implicit, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		e.t.Fatalf("login as %s: %v", user, err)
	}
	return c, w
}

// expectBye waits for the server's BYE with want in its text and the connection's close.
func expectBye(t *testing.T, who string, c *imapclient.Client, w *transcript, want string) {
	t.Helper()
	waitFor(t, 20*time.Second, who+" gets BYE", func() bool { return w.bye() != "" })
	if line := w.bye(); !strings.Contains(line, want) {
		t.Errorf("%s got %q, want a BYE saying %q", who, line, want)
	}
	select {
	case <-c.Closed():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: the connection is still open after BYE", who)
	}
}

// expectWorking checks that a session still answers NOOP and FETCH, and got no BYE.
func expectWorking(t *testing.T, who string, c *imapclient.Client, w *transcript, messages int) {
	t.Helper()
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("%s: NOOP after the reload: %v", who, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != messages {
		t.Fatalf("%s: FETCH after the reload: %d messages, %v; want %d", who, len(msgs), err, messages)
	}
	if line := w.bye(); line != "" {
		t.Fatalf("%s got %q, want the session left alone", who, line)
	}
}

// reload puts cfg in force and revokes as Run does, and returns how many sessions ended.
func (e *env) reload(sessions *Sessions, cfg *config.Config) int {
	dir := config.NewDirectory(cfg)
	e.live.Store(dir)
	return sessions.Revoke(dir)
}

// withMailboxes copies the config in force with its mailboxes changed by edit.
func (e *env) withMailboxes(edit func([]config.Mailbox) []config.Mailbox) *config.Config {
	cfg := *e.live.Load().Config()
	cfg.Mailboxes = edit(append([]config.Mailbox(nil), cfg.Mailboxes...))
	return &cfg
}

func revokedCount(reason string) float64 {
	return testutil.ToFloat64(metrics.SessionsRevoked.WithLabelValues("imap", reason))
}

// alice, in IDLE on her INBOX as a phone would be, has her Mailbox deleted: she gets BYE at once,
// not at her next command. bob, logged in too, goes on as before.
func TestRevokeRemovedMailboxInIdle(t *testing.T) {
	e, sessions := newRevokeEnv(t, nil)
	e.deliver(alice, msgText("one", "for alice"))
	e.deliver(bob, msgText("two", "for bob"))
	a, aw := e.watchedLogin(alice, alicePassword)
	if _, err := a.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := a.Idle()
	if err != nil {
		t.Fatal(err)
	}
	b, bw := e.watchedLogin(bob, bobPassword)
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	before := revokedCount(metrics.RevokedRemoved)

	n := e.reload(sessions, e.withMailboxes(func(mbs []config.Mailbox) []config.Mailbox {
		return mbs[1:] // bob only
	}))
	if n != 1 {
		t.Errorf("Revoke ended %d sessions, want 1 (alice's)", n)
	}
	expectBye(t, "alice in IDLE", a, aw, "no longer exists")
	if err := idle.Wait(); err == nil {
		t.Error("alice's IDLE ended without an error after BYE")
	}
	expectWorking(t, "bob", b, bw, 1)
	if d := revokedCount(metrics.RevokedRemoved) - before; d != 1 {
		t.Errorf("kubemail_sessions_revoked_total{reason=removed} grew by %v, want 1", d)
	}
	// A second reload finds nothing more to end.
	if n := e.reload(sessions, e.live.Load().Config()); n != 0 {
		t.Errorf("a second reload ended %d sessions, want 0", n)
	}
}

// alice's password is rotated: her session, logged in with the old one, gets BYE; she logs in
// with the new one, not with the old one.
func TestRevokeChangedPassword(t *testing.T) {
	e, sessions := newRevokeEnv(t, nil)
	a, aw := e.watchedLogin(alice, alicePassword)
	if _, err := a.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	b, bw := e.watchedLogin(bob, bobPassword)
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	e.deliver(bob, msgText("kept", "for bob"))
	before := revokedCount(metrics.RevokedCredentials)
	newHash, err := bcrypt.GenerateFromPassword([]byte("alice-new-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	e.reload(sessions, e.withMailboxes(func(mbs []config.Mailbox) []config.Mailbox {
		mbs[0].PasswordHash = string(newHash)
		return mbs
	}))
	expectBye(t, "alice", a, aw, "password was changed")
	expectWorking(t, "bob", b, bw, 1)
	if d := revokedCount(metrics.RevokedCredentials) - before; d != 1 {
		t.Errorf("kubemail_sessions_revoked_total{reason=credentials} grew by %v, want 1", d)
	}
	c, err := imapclient.DialTLS(e.implicit, e.clientOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectCode(t, "LOGIN with the old password", c.Login(alice, alicePassword).Wait(), imap.ResponseCodeAuthenticationFailed)
	e.login(alice, "alice-new-password")
}

// A reload that changes other things (aliases, quota, another mailbox's password, a new
// mailbox) ends no session of an unchanged mailbox.
func TestRevokeLeavesUnchangedSessions(t *testing.T) {
	e, sessions := newRevokeEnv(t, nil)
	e.deliver(alice, msgText("one", "for alice"))
	a, aw := e.watchedLogin(alice, alicePassword)
	if _, err := a.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := a.Idle()
	if err != nil {
		t.Fatal(err)
	}
	b, bw := e.watchedLogin(bob, bobPassword)
	n := e.reload(sessions, e.withMailboxes(func(mbs []config.Mailbox) []config.Mailbox {
		mbs[0].Aliases = []string{"sales@example.test"}
		mbs[0].Quota = 1 << 30
		return append(mbs, config.Mailbox{Address: "carol@example.test", PasswordHash: mbs[1].PasswordHash})
	}))
	if n != 0 {
		t.Errorf("Revoke ended %d sessions, want none", n)
	}
	// IDLE still reports new mail, then NOOP and FETCH work.
	e.deliver(alice, msgText("two", "after the reload"))
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("alice's IDLE: %v", err)
	}
	expectWorking(t, "alice", a, aw, 1)
	if st := a.Mailbox(); st == nil || st.NumMessages != 2 {
		t.Errorf("alice's INBOX after the reload: %+v, want 2 messages", st)
	}
	if err := b.Noop().Wait(); err != nil || bw.bye() != "" {
		t.Fatalf("bob after the reload: %v %q", err, bw.bye())
	}
}

// A Mailbox deleted with reclaimPolicy Delete: the server purges its mail (the store's
// RemoveMailbox), which alone would leave her session answering NO; the revocation that
// follows ends it with BYE.
func TestRevokePurgedMailbox(t *testing.T) {
	e, sessions := newRevokeEnv(t, nil)
	e.deliver(alice, msgText("one", "for alice"))
	a, aw := e.watchedLogin(alice, alicePassword)
	if _, err := a.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	cfg := e.withMailboxes(func(mbs []config.Mailbox) []config.Mailbox { return mbs[1:] })
	dir := config.NewDirectory(cfg)
	e.live.Store(dir)
	if _, err := e.store.RemoveMailbox(alice, filepath.Join(e.dataDir, "trash")); err != nil {
		t.Fatal(err)
	}
	if n := sessions.Revoke(dir); n != 1 {
		t.Errorf("Revoke ended %d sessions, want 1", n)
	}
	expectBye(t, "alice", a, aw, "no longer exists")
}

// gatedAuth holds a login after its password is checked, until released: the window in which a
// reload may come.
type gatedAuth struct {
	Authenticator
	checked, release chan struct{}
}

func (g *gatedAuth) Authenticate(ctx context.Context, remote net.Addr, user, password string) (*config.Mailbox, error) {
	mb, err := g.Authenticator.Authenticate(ctx, remote, user, password)
	close(g.checked)
	<-g.release
	return mb, err
}

// A reload that comes between a login's password check and its end (the session not yet
// registered when Revoke runs) still keeps the login out: it is refused, not let in for good.
func TestRevokeDuringLogin(t *testing.T) {
	gate := &gatedAuth{checked: make(chan struct{}), release: make(chan struct{})}
	e, sessions := newRevokeEnv(t, func(a Authenticator) Authenticator { gate.Authenticator = a; return gate })
	c, err := imapclient.DialTLS(e.implicit, e.clientOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	result := make(chan error, 1)
	go func() { result <- c.Login(alice, alicePassword).Wait() }()
	select {
	case <-gate.checked:
	case err := <-result:
		t.Fatalf("the login ended before its password was checked: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the password was not checked within 10s")
	}
	if n := e.reload(sessions, e.withMailboxes(func(mbs []config.Mailbox) []config.Mailbox { return mbs[1:] })); n != 0 {
		t.Errorf("Revoke ended %d sessions, want 0: the login was not done", n)
	}
	close(gate.release)
	select {
	case err := <-result:
		expectCode(t, "the login checked before the reload", err, imap.ResponseCodeAuthenticationFailed)
	case <-time.After(10 * time.Second):
		t.Fatal("the login did not end within 10s")
	}
}
