package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"
)

type running struct {
	log   *syncBuffer
	addrs map[string]string
	done  chan error
	stop  context.CancelFunc
}

func startServer(t *testing.T, manifests string, modify ...func(*Options)) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{log: &syncBuffer{}, addrs: map[string]string{}, done: make(chan error, 1), stop: cancel}
	var mu sync.Mutex
	listening := make(chan struct{}, 8)
	opts := Options{
		Manifests: manifests, DataDir: t.TempDir(), Hostname: "mx.example.test",
		SMTPAddr: "127.0.0.1:0", SubmissionAddr: "127.0.0.1:0", SubmissionsAddr: "127.0.0.1:0",
		IMAPAddr: "127.0.0.1:0", IMAPSAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0",
		ReloadInterval: 50 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(r.log, nil)),
		OnListen: func(protocol string, addr net.Addr) {
			mu.Lock()
			r.addrs[protocol] = addr.String()
			mu.Unlock()
			listening <- struct{}{}
		},
	}
	for _, m := range modify {
		m(&opts)
	}
	go func() { r.done <- Run(ctx, opts) }()
	for range 6 {
		select {
		case <-listening:
		case err := <-r.done:
			t.Fatalf("server stopped: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("server did not listen within 10s")
		}
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Error("server did not shut down within 15s")
		}
	})
	return r
}

func copySamples(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"example-test.yaml", "mailboxes.yaml"} {
		data, err := os.ReadFile(filepath.Join("../../config/samples", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func imapLogin(addr, user, password string) error {
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Login(user, password).Wait()
}

// eventually polls check until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after 30s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const carol = `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol}
spec:
  address: carol@example.test
  passwordSecretRef: {name: carol-pw, key: password}
---
apiVersion: v1
kind: Secret
metadata: {name: carol-pw}
stringData: {password: carol-password}
`

// A Mailbox added to the manifests can receive mail and log in without a restart; once removed,
// its login fails and mail to it is refused. A broken edit keeps the config in force.
func TestReloadAddsAndRemovesMailboxes(t *testing.T) {
	manifests := copySamples(t)
	srv := startServer(t, manifests)
	if err := imapLogin(srv.addrs["imap"], "alice@example.test", "alice-password"); err != nil {
		t.Fatalf("alice: %v", err)
	}

	carolFile := filepath.Join(manifests, "carol.yaml")
	if err := os.WriteFile(carolFile, []byte(carol), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "carol logs in after she is added", func() error {
		return imapLogin(srv.addrs["imap"], "carol@example.test", "carol-password")
	})
	if err := sendMail(srv.addrs["smtp"], "carol@example.test"); err != nil {
		t.Fatalf("mail to carol: %v", err)
	}

	// A broken edit is refused and carol keeps working.
	if err := os.WriteFile(filepath.Join(manifests, "broken.yaml"), []byte("kind: Nope\napiVersion: v9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broken edit is refused", func() error {
		if !strings.Contains(srv.log.String(), "Kept the previous config") {
			return errors.New("no log line yet")
		}
		return nil
	})
	if err := imapLogin(srv.addrs["imap"], "carol@example.test", "carol-password"); err != nil {
		t.Fatalf("carol after a broken edit: %v", err)
	}
	os.Remove(filepath.Join(manifests, "broken.yaml"))

	if err := os.Remove(carolFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mail to carol is refused after she is removed", func() error {
		err := sendMail(srv.addrs["smtp"], "carol@example.test")
		if err == nil {
			return errors.New("mail to carol was accepted")
		}
		if !strings.Contains(err.Error(), "550") {
			return err
		}
		return nil
	})
	if err := imapLogin(srv.addrs["imap"], "carol@example.test", "carol-password"); err == nil {
		t.Fatalf("carol still logs in after her Mailbox was removed; log:\n%s", srv.log.String())
	}
}

// sendMail sends a short message over the MX without STARTTLS, as a peer MTA may.
func sendMail(addr, to string) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail("bob@example.test", []string{to}, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		return err
	}
	return c.Quit()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestStartupRefusesBadManifests(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(carol), 0o644)
	err := Run(context.Background(), Options{Manifests: dir, DataDir: t.TempDir(), SMTPAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), `Mailbox "default/carol": spec.address`) {
		t.Fatalf("err = %v", err)
	}
}

func TestHealthEndpoint(t *testing.T) {
	srv := startServer(t, copySamples(t))
	conn, err := net.Dial("tcp", srv.addrs["health"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET /readyz HTTP/1.0\r\n\r\n"))
	buf := make([]byte, 512)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.0 200") {
		t.Fatalf("readyz answered %q", buf[:n])
	}
}

// A client past the connection limit is told to come back later; once one of its connections
// closes, it is served again. (The test client is on loopback, which only the total limit
// binds; TestPerAddressLimit checks the per-address one.)
func TestConnectionLimit(t *testing.T) {
	srv := startServer(t, copySamples(t), func(o *Options) { o.MaxConns = 2 })
	greeting := func(c net.Conn) string {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		return string(buf[:n])
	}
	var open []net.Conn
	for i := range 2 {
		c, err := net.Dial("tcp", srv.addrs["smtp"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if g := greeting(c); !strings.HasPrefix(g, "220 ") {
			t.Fatalf("connection %d greeted with %q", i, g)
		}
		open = append(open, c)
	}
	c, err := net.Dial("tcp", srv.addrs["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	if g := greeting(c); !strings.HasPrefix(g, "421 4.7.0 ") {
		t.Fatalf("third connection greeted with %q, want 421 4.7.0", g)
	}
	c.Close()
	for range 2 {
		c, err := net.Dial("tcp", srv.addrs["imap"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		greeting(c)
	}
	c, _ = net.Dial("tcp", srv.addrs["imap"])
	if g := greeting(c); !strings.HasPrefix(g, "* BYE [UNAVAILABLE]") {
		t.Fatalf("third IMAP connection greeted with %q", g)
	}
	c.Close()

	open[0].Write([]byte("QUIT\r\n"))
	greeting(open[0]) // 221, then the server closes it
	eventually(t, "a freed slot is served again", func() error {
		c, err := net.Dial("tcp", srv.addrs["smtp"])
		if err != nil {
			return err
		}
		defer c.Close()
		if g := greeting(c); !strings.HasPrefix(g, "220 ") {
			return errors.New("greeted with " + g)
		}
		return nil
	})
}

func TestPerAddressLimit(t *testing.T) {
	l := newLimitListener(nil, 10, 2, "")
	remote, local := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("127.0.0.1")
	first, second, third := l.acquire(remote), l.acquire(remote), l.acquire(remote)
	if !first || !second || third {
		t.Error("a remote client gets exactly 2 connections")
	}
	if !l.acquire(netip.MustParseAddr("192.0.2.8")) {
		t.Error("another client is not held up by the first")
	}
	for i := range 7 {
		if !l.acquire(local) {
			t.Fatalf("loopback connection %d refused below the total limit", i)
		}
	}
	if l.acquire(local) {
		t.Error("the total limit binds loopback too")
	}
	l.release(remote)
	if !l.acquire(remote) {
		t.Error("a released slot is free again")
	}
}
