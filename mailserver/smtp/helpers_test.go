package smtp

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/store"
	"github.com/kubemail/kubemail/mailserver/store/storetest"
)

const testHostname = "mx.example.test"

// testHashes keeps one hash per password, as the server's hasher does (auth.NewHasher): a
// config made again is a reload that changes no password, which ends no session.
var testHashes sync.Map

// testConfig serves two domains: example.test with the default limits, and small.test with a
// 10 KiB size limit and at most 3 recipients.
func testConfig(t testing.TB) *config.Config {
	hash := func(pw string) string {
		if h, ok := testHashes.Load(pw); ok {
			return h.(string)
		}
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		actual, _ := testHashes.LoadOrStore(pw, string(h))
		return actual.(string)
	}
	return &config.Config{
		Domains: []config.Domain{
			{Name: "example.test", MaxMessageSize: config.DefaultMaxMessageSize, MaxRecipients: config.DefaultMaxRecipients},
			{Name: "small.test", MaxMessageSize: 10 << 10, MaxRecipients: 3},
			{Name: "many.test", MaxRecipients: 150}, // unset size: the default
		},
		Mailboxes: []config.Mailbox{
			{Address: "alice@example.test", Aliases: []string{"postmaster@example.test", "sales@example.test"}, PasswordHash: hash("alice-password")},
			{Address: "bob@example.test", PasswordHash: hash("bob-password")},
			{Address: "carol@small.test", PasswordHash: hash("carol-password")},
			{Address: "dave@small.test", PasswordHash: hash("dave-password")},
			{Address: "erin@small.test", PasswordHash: hash("erin-password")},
			{Address: "frank@small.test", PasswordHash: hash("frank-password")},
			{Address: "gina@many.test", PasswordHash: hash("gina-password")},
		},
	}
}

// testServer is one MX or submission server on a real loopback listener, over a real store.
type testServer struct {
	t       testing.TB
	srv     *gosmtp.Server
	addr    string
	dataDir string
	store   *store.Store
	live    *config.Live
	logs    *syncBuffer
	tls     *tls.Config // the server's
	client  *tls.Config // trusts the server's certificate
	// draining is the server's Options.Draining: set it to stop new transactions.
	draining *atomic.Bool
}

type serverOption func(*gosmtp.Server)

func withReadTimeout(d time.Duration) serverOption {
	return func(s *gosmtp.Server) { s.ReadTimeout = d }
}

// startServer starts NewMX (or NewSubmission) on 127.0.0.1:0. implicitTLS serves it on a TLS
// listener, as the cmd does for port 465.
func startServer(t testing.TB, submission, implicitTLS bool, opts ...serverOption) *testServer {
	t.Helper()
	dataDir := t.TempDir()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.Open(dataDir, logger)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Settle(t, st, dataDir) // runs after the server's cleanup below
	live := config.NewLive(config.NewDirectory(testConfig(t)))
	authn := auth.NewAuthenticator(live)
	authn.FailureDelay, authn.MaxFailureDelay = time.Millisecond, time.Millisecond
	serverTLS, clientTLS := testTLS(t)
	draining := &atomic.Bool{}
	o := Options{Hostname: testHostname, Live: live, Store: st, Auth: authn, TLS: serverTLS, Logger: logger, Draining: draining}
	var srv *gosmtp.Server
	if submission {
		srv = NewSubmission(o)
	} else {
		srv = NewMX(o)
	}
	for _, opt := range opts {
		opt(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicitTLS {
		ln = tls.NewListener(ln, serverTLS)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		ln.Close() // go-smtp's Close misses a listener that Serve has not registered yet
		<-done
		if t.Failed() || os.Getenv("SMTP_TEST_LOGS") != "" {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &testServer{t: t, srv: srv, addr: ln.Addr().String(), dataDir: dataDir, store: st, live: live, logs: logs, tls: serverTLS, client: clientTLS, draining: draining}
}

// testTLS makes a self-signed certificate for the test hostname and 127.0.0.1.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: testHostname},
		DNSNames:     []string{testHostname, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool, ServerName: testHostname}
	return server, client
}

// writeCertFiles writes the server's certificate as PEM for tools that want a CA file.
func (s *testServer) caFile() string {
	s.t.Helper()
	cert := s.tls.Certificates[0].Leaf
	path := filepath.Join(s.t.TempDir(), "ca.pem")
	pem := "-----BEGIN CERTIFICATE-----\n"
	b64 := encodeBase64(cert.Raw)
	for len(b64) > 64 {
		pem += b64[:64] + "\n"
		b64 = b64[64:]
	}
	pem += b64 + "\n-----END CERTIFICATE-----\n"
	if err := os.WriteFile(path, []byte(pem), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// maildir lists the messages in a mailbox's INBOX, sorted, and fails the test if its tmp/ holds
// anything (a delivery left half done).
func (s *testServer) maildir(addr string) []string {
	s.t.Helper()
	local, domain, _ := strings.Cut(addr, "@")
	if tmp, _ := os.ReadDir(filepath.Join(s.dataDir, "mail", domain, local, "tmp")); len(tmp) > 0 {
		s.t.Errorf("%s: tmp/ holds %d files after delivery", addr, len(tmp))
	}
	return s.delivered(addr)
}

// delivered lists the messages in a mailbox's INBOX (new/ and cur/: an INBOX open in the store
// moves new mail to cur/ in the background), sorted.
func (s *testServer) delivered(addr string) []string {
	s.t.Helper()
	local, domain, _ := strings.Cut(addr, "@")
	var msgs []string
	for _, m := range storetest.Inbox(s.t, filepath.Join(s.dataDir, "mail", domain, local)) {
		msgs = append(msgs, m.Data)
	}
	sort.Strings(msgs)
	return msgs
}

// only returns the single message in addr's mailbox.
func (s *testServer) only(addr string) string {
	s.t.Helper()
	msgs := s.maildir(addr)
	if len(msgs) != 1 {
		s.t.Fatalf("%s holds %d messages, want 1", addr, len(msgs))
	}
	return msgs[0]
}

// waitLog waits until the server log has a line containing every one of parts.
func (s *testServer) waitLog(parts ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			if containsAll(line, parts...) {
				return line
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no log line with %q", parts)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// rawClient walks the protocol by hand over a net.Conn.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// greeted dials, checks the greeting and says EHLO.
func greeted(t testing.TB, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.expect(220, testHostname+" ESMTP")
	c.cmd("EHLO client.test")
	c.expect(250)
	return c
}

func (c *rawClient) write(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("writing %.40q: %v", s, err)
	}
}

func (c *rawClient) cmd(line string) { c.t.Helper(); c.write(line + "\r\n") }

// reply reads one reply, all its lines, and returns the code and the text of its lines joined.
func (c *rawClient) reply() (int, string, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(lines, "\n"), err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			return 0, line, fmt.Errorf("short reply line %q", line)
		}
		lines = append(lines, line[4:])
		if line[3] == ' ' {
			code, err := strconv.Atoi(line[:3])
			return code, strings.Join(lines, "\n"), err
		}
	}
}

// expect reads one reply and checks its code and that its text has every one of parts.
func (c *rawClient) expect(code int, parts ...string) string {
	c.t.Helper()
	got, text, err := c.reply()
	if err != nil {
		c.t.Fatalf("reading the reply (want %d %q): %v (got %q)", code, parts, err, text)
	}
	if got != code || !containsAll(text, parts...) {
		c.t.Fatalf("got reply %d %q, want %d %q", got, text, code, parts)
	}
	return text
}

// expectClosed checks that the server closes the connection without another reply.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	if err == nil {
		c.t.Fatalf("got %q, want the connection closed", line)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatal("connection still open")
	}
}

// startTLS upgrades the connection and says EHLO again.
func (c *rawClient) startTLS(cfg *tls.Config) string {
	c.t.Helper()
	c.cmd("STARTTLS")
	c.expect(220)
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.cmd("EHLO client.test")
	return c.expect(250)
}

// message is a small RFC 5322 message with CRLF line ends.
func message(subject, body string) string {
	return "From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@remote.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\n" + body + "\r\n"
}

func encodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// sendMail sends one message with go-smtp's client, over STARTTLS when tlsConfig is not nil.
func sendMail(addr string, tlsConfig *tls.Config, from string, to []string, msg string) error {
	var c *gosmtp.Client
	var err error
	if tlsConfig != nil {
		c, err = gosmtp.DialStartTLS(addr, tlsConfig)
	} else {
		c, err = gosmtp.Dial(addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}
