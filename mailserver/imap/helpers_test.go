package imap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/store"
	"github.com/kubemail/kubemail/mailserver/store/storetest"
	"github.com/kubemail/kubemail/mailserver/tlsutil"
)

const (
	alice, alicePassword = "alice@example.test", "alice-password"
	bob, bobPassword     = "bob@example.test", "bob-password"
)

var (
	certOnce           sync.Once
	serverTLS, roots   = (*tls.Config)(nil), (*x509.CertPool)(nil)
	hashOnce           sync.Once
	aliceHash, bobHash string
)

func testTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	certOnce.Do(func() {
		certPEM, keyPEM, err := tlsutil.Generate("localhost", time.Hour)
		if err != nil {
			panic(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			panic(err)
		}
		serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		roots = x509.NewCertPool()
		roots.AppendCertsFromPEM(certPEM)
	})
	return serverTLS, roots
}

func testLive(t *testing.T) *config.Live {
	t.Helper()
	hashOnce.Do(func() {
		aliceHash, _ = auth.Hash(alicePassword)
		bobHash, _ = auth.Hash(bobPassword)
	})
	return config.NewLive(config.NewDirectory(&config.Config{
		Domains: []config.Domain{{Name: "example.test", MaxMessageSize: 25 << 20, MaxRecipients: 100}},
		Mailboxes: []config.Mailbox{
			{Address: alice, Aliases: []string{"postmaster@example.test"}, PasswordHash: aliceHash},
			{Address: bob, PasswordHash: bobHash},
		},
	}))
}

// env is a running IMAP server over a store in a temporary data dir.
type env struct {
	t        *testing.T
	dataDir  string
	store    *store.Store
	live     *config.Live
	srv      *imapserver.Server
	logs     *logRecorder
	plain    string // STARTTLS listener address
	implicit string // IMAPS listener address
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return startEnv(t, t.TempDir())
}

// startEnv starts a server over dataDir, as `kubemail server` would after a restart.
func startEnv(t *testing.T, dataDir string) *env {
	t.Helper()
	return startEnvWith(t, dataDir, nil)
}

// startEnvWith is startEnv with the server's options changed by adjust, when not nil.
func startEnvWith(t *testing.T, dataDir string, adjust func(*Options)) *env {
	t.Helper()
	st, err := store.Open(dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Settle(t, st, dataDir) // runs after the server's cleanup below
	live := testLive(t)
	authn := auth.NewAuthenticator(live)
	authn.FailureDelay, authn.MaxFailureDelay = time.Millisecond, time.Millisecond
	tlsConf, _ := testTLS(t)
	logs := &logRecorder{}
	opts := Options{Store: st, Live: live, Auth: authn, TLS: tlsConf, Logger: slog.New(logs)}
	if adjust != nil {
		adjust(&opts)
	}
	srv := NewServer(opts)
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	implicit, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(plain)
	go srv.Serve(tls.NewListener(implicit, tlsConf))
	e := &env{t: t, dataDir: dataDir, store: st, live: live, srv: srv, logs: logs, plain: plain.Addr().String(), implicit: implicit.Addr().String()}
	t.Cleanup(func() { srv.Close() })
	return e
}

func (e *env) clientOptions(h *imapclient.UnilateralDataHandler) *imapclient.Options {
	_, pool := testTLS(e.t)
	return &imapclient.Options{
		TLSConfig:             &tls.Config{RootCAs: pool, ServerName: "localhost"},
		UnilateralDataHandler: h,
	}
}

// login connects over IMAPS and logs in.
func (e *env) login(user, password string) *imapclient.Client {
	return e.loginWith(user, password, nil)
}

func (e *env) loginWith(user, password string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	e.t.Helper()
	c, err := imapclient.DialTLS(e.implicit, e.clientOptions(h))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		e.t.Fatalf("login as %s: %v", user, err)
	}
	return c
}

func (e *env) deliver(to string, msg string) {
	e.t.Helper()
	if _, err := e.store.Deliver(context.Background(), []string{to}, nil, strings.NewReader(msg)); err != nil {
		e.t.Fatal(err)
	}
}

// responseCode returns the response code of a tagged NO/BAD, or fails.
func responseCode(t *testing.T, err error) imap.ResponseCode {
	t.Helper()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) {
		t.Fatalf("got %v, want an IMAP error response", err)
	}
	return imapErr.Code
}

func expectCode(t *testing.T, what string, err error, code imap.ResponseCode) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want NO [%s]", what, code)
		return
	}
	if got := responseCode(t, err); got != code {
		t.Errorf("%s: response code %q (%v), want %q", what, got, err, code)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func msgText(subject, body string) string {
	return "From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nSubject: " + subject +
		"\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") +
		"@remote.test>\r\n\r\n" + body
}

// logRecorder is a slog.Handler keeping the messages of warnings and errors.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	l.msgs = append(l.msgs, msg)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }
func (l *logRecorder) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}
