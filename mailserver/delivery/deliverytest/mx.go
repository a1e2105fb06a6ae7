// Package deliverytest runs the remote side of outbound delivery for tests, with real parts: real
// kubemail MX and submission servers (mailserver/smtp over mailserver/store) on 127.0.0.x
// addresses, an MTA-STS policy server with its own CA, and a DKIM signer. The DNS they are
// found by is internal/dnstest; delivery.NewResolver(dns.Addr) asks it through the mail
// server's DNS cache, as the server does.
package deliverytest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/smtp"
	"github.com/kubemail/kubemail/mailserver/store"
	"github.com/kubemail/kubemail/mailserver/store/storetest"
	"github.com/kubemail/kubemail/mailserver/tlsutil"
)

// Server is a real kubemail MX (or submission server) with its own data dir, on ip:port.
type Server struct {
	t          testing.TB
	Hostname   string
	Addr       string // ip:port
	DataDir    string
	Live       *config.Live
	Store      *store.Store
	ClientTLS  *tls.Config // trusts the server's certificate
	submission bool
	implicit   bool // TLS from the first byte (port 465)
	serverTLS  *tls.Config
	logs       *LogBuffer
	// Timeouts shorter than the production ones, so a stuck test fails fast.
	ReadTimeout time.Duration
	options     func(*smtp.Options) // changes to the server's options, from StartMXWith

	mu      sync.Mutex
	srv     *gosmtp.Server
	ln      *countingListener
	done    chan struct{}
	Accepts int // connections accepted so far
	MaxOpen int // most connections open at once
	open    int
}

// Mailboxes returns a config serving domain with one mailbox per local part; every password is
// "<local>-password".
func Mailboxes(t testing.TB, domain string, locals ...string) *config.Config {
	cfg := &config.Config{Domains: []config.Domain{{Name: domain, MaxMessageSize: config.DefaultMaxMessageSize, MaxRecipients: config.DefaultMaxRecipients}}}
	for _, l := range locals {
		h, err := bcrypt.GenerateFromPassword([]byte(l+"-password"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Mailboxes = append(cfg.Mailboxes, config.Mailbox{Address: l + "@" + domain, PasswordHash: string(h)})
	}
	return cfg
}

// StartMX starts a kubemail MX named hostname for cfg on ip:port (port 0: any), offering
// STARTTLS with a self-signed certificate for hostname. It stops when the test ends.
func StartMX(t testing.TB, hostname, ip string, port int, cfg *config.Config) *Server {
	return start(t, hostname, ip, port, cfg, false, false)
}

// StartMXWith starts a kubemail MX as StartMX does, with changes to its smtp.Options (for
// example a msgauth.Verifier).
func StartMXWith(t testing.TB, hostname, ip string, port int, cfg *config.Config, options func(*smtp.Options)) *Server {
	return startWith(t, hostname, ip, port, cfg, false, false, options)
}

// StartSubmission starts a kubemail submission server (STARTTLS, AUTH) instead.
func StartSubmission(t testing.TB, hostname, ip string, port int, cfg *config.Config) *Server {
	return start(t, hostname, ip, port, cfg, true, false)
}

// StartSubmissions starts a kubemail submission server with implicit TLS (port 465's role).
func StartSubmissions(t testing.TB, hostname, ip string, port int, cfg *config.Config) *Server {
	return start(t, hostname, ip, port, cfg, true, true)
}

func start(t testing.TB, hostname, ip string, port int, cfg *config.Config, submission, implicit bool) *Server {
	t.Helper()
	return startWith(t, hostname, ip, port, cfg, submission, implicit, nil)
}

func startWith(t testing.TB, hostname, ip string, port int, cfg *config.Config, submission, implicit bool, options func(*smtp.Options)) *Server {
	t.Helper()
	s := &Server{t: t, Hostname: hostname, DataDir: t.TempDir(), submission: submission, implicit: implicit, logs: &LogBuffer{}, ReadTimeout: 10 * time.Second, options: options}
	certPEM, keyPEM, err := tlsutil.Generate(hostname, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s.serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	s.ClientTLS = &tls.Config{RootCAs: pool}
	s.Live = config.NewLive(config.NewDirectory(cfg))
	s.Store, err = store.Open(s.DataDir, slog.New(slog.NewTextHandler(s.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Settle(t, s.Store, s.DataDir) // runs after the server's cleanup below
	s.Addr = net.JoinHostPort(ip, fmt.Sprint(port))
	s.Start()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", hostname, s.logs.String())
		}
	})
	return s
}

// Start serves (again) on the server's address.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return
	}
	logger := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	authn := auth.NewAuthenticator(s.Live)
	authn.FailureDelay, authn.MaxFailureDelay = time.Millisecond, time.Millisecond
	o := smtp.Options{Hostname: s.Hostname, Live: s.Live, Store: s.Store, Auth: authn, TLS: s.serverTLS, Logger: logger}
	if s.options != nil {
		s.options(&o)
	}
	srv := smtp.NewMX(o)
	if s.submission {
		srv = smtp.NewSubmission(o)
	}
	srv.ReadTimeout = s.ReadTimeout
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		ln, err = net.Listen("tcp", s.Addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener's port is being released
	}
	if err != nil {
		s.t.Fatalf("listening on %s: %v", s.Addr, err)
	}
	s.Addr = ln.Addr().String()
	s.ln = &countingListener{Listener: ln, s: s}
	var serve net.Listener = s.ln
	if s.implicit {
		serve = tls.NewListener(s.ln, s.serverTLS)
	}
	s.srv = srv
	s.done = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		srv.Serve(serve)
	}(s.done)
}

// Stop closes the listener and every connection: the server is down.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, ln, done := s.srv, s.ln, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	ln.Close() // go-smtp's Close misses a listener Serve has not registered yet
	<-done
}

// SetTLS replaces the server's TLS config from the next Start (tests break TLS with it).
func (s *Server) SetTLS(cfg *tls.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serverTLS = cfg
}

// Port is the server's port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Stats returns the connections accepted so far and the most open at once.
func (s *Server) Stats() (accepts, maxOpen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Accepts, s.MaxOpen
}

// Logs is the server's log so far.
func (s *Server) Logs() string { return s.logs.String() }

// Inbox returns the messages in the INBOX of address (new/ and cur/), oldest first; a message
// the store moves from new/ to cur/ meanwhile (once the INBOX is open) is read once.
func (s *Server) Inbox(address string) []string {
	s.t.Helper()
	local, domain, _ := strings.Cut(address, "@")
	var out []string
	for _, m := range storetest.Inbox(s.t, filepath.Join(s.DataDir, "mail", domain, local)) {
		out = append(out, m.Data)
	}
	return out
}

// WaitInbox polls until address has n messages, failing the test after timeout.
func (s *Server) WaitInbox(address string, n int, timeout time.Duration) []string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Inbox(address)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s has %d messages after %v, want %d", address, len(msgs), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type countingListener struct {
	net.Listener
	s *Server
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	l.s.Accepts++
	l.s.open++
	l.s.MaxOpen = max(l.s.MaxOpen, l.s.open)
	l.s.mu.Unlock()
	return &countedConn{Conn: c, s: l.s}, nil
}

type countedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.open--
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// LogBuffer collects a logger's output across goroutines (the Writer of a test's
// slog.TextHandler).
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// FreePort returns a port free on ip now (for servers that must share a port across
// addresses, as MX hosts do on 25).
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
