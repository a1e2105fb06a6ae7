package delivery_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
)

// testMessage is a small message as the queue would hold it.
func testMessage(id, from string, rcpts ...string) *delivery.Message {
	body := "Received: from test by a.test; Thu, 26 Nov 2026 10:00:00 +0000\r\n" +
		"From: <" + from + ">\r\nTo: <" + rcpts[0] + ">\r\nSubject: " + id + "\r\n\r\nHello from " + id + ".\r\n"
	return &delivery.Message{
		ID: id, From: from, Rcpts: rcpts, Size: int64(len(body)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil },
	}
}

type env struct {
	dns  *dnstest.Server
	b    *deliverytest.Server // MX of b.test on 127.0.0.2
	port int                  // the MX port of every host
}

// newEnv starts the DNS server and B's MX: b.test MX 10 mx.b.test, mx.b.test A 127.0.0.2.
func newEnv(t *testing.T) *env {
	e := &env{dns: dnstest.Start(t)}
	e.b = deliverytest.StartMX(t, "mx.b.test", "127.0.0.2", 0, deliverytest.Mailboxes(t, "b.test", "bob", "carol"))
	e.port = e.b.Port()
	e.dns.SetMX("b.test", &net.MX{Host: "mx.b.test", Pref: 10})
	e.dns.SetA("mx.b.test", "127.0.0.2")
	return e
}

func (e *env) client(t *testing.T, mod ...func(*delivery.Options)) *delivery.Client {
	o := delivery.Options{
		Hostname: "mx.a.test",
		Resolver: delivery.NewResolver(e.dns.Addr),
		MXPort:   e.port,
		Timeouts: delivery.Timeouts{Connect: 2 * time.Second, Command: 5 * time.Second, DataInit: 5 * time.Second, Block: 5 * time.Second, DataEnd: 5 * time.Second},
		Logger:   testLogger(t),
	}
	for _, m := range mod {
		m(&o)
	}
	c := delivery.New(o)
	t.Cleanup(c.Close)
	return c
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("DELIVERY_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

func deliver(t *testing.T, c *delivery.Client, m *delivery.Message) []delivery.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res := c.Deliver(ctx, m)
	if len(res) != len(m.Rcpts) {
		t.Fatalf("%d results for %d recipients", len(res), len(m.Rcpts))
	}
	return res
}

func wantStatus(t *testing.T, r delivery.Result, status string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %s (%s), want %s", r.Rcpt, r.Status, r, status)
	}
}

func TestMXDeliveryPerRecipientResultsOverSTARTTLS(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	res := deliver(t, c, testMessage("m1", "alice@a.test", "bob@b.test", "nobody@b.test", "carol@b.test"))
	wantStatus(t, res[0], "2.0.0")
	wantStatus(t, res[1], "5.1.1")
	wantStatus(t, res[2], "2.0.0")
	if res[1].Code != 550 || !res[1].Permanent() || res[1].RemoteMTA != "mx.b.test" {
		t.Errorf("unknown user: %+v, want a permanent 550 from mx.b.test", res[1])
	}
	msgs := e.b.WaitInbox("bob@b.test", 1, 30*time.Second)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: m1") || !strings.Contains(msgs[0], "Hello from m1.") {
		t.Fatalf("bob's inbox: %q", msgs)
	}
	// B's Received: header shows the message came over TLS (opportunistic STARTTLS), with our EHLO name.
	if !strings.Contains(msgs[0], "with ESMTPS") || !strings.Contains(msgs[0], "from mx.a.test") {
		t.Errorf("message did not arrive over STARTTLS from mx.a.test:\n%s", msgs[0])
	}
	if n := len(e.b.Inbox("carol@b.test")); n != 1 {
		t.Errorf("carol has %d messages", n)
	}
}

func TestMXPreferenceFallsBackToTheNextHost(t *testing.T) {
	e := newEnv(t)
	// The best MX, 127.0.0.3, is down (nothing listens there on the port).
	e.dns.SetMX("b.test", &net.MX{Host: "mx1.b.test", Pref: 5}, &net.MX{Host: "mx.b.test", Pref: 10})
	e.dns.SetA("mx1.b.test", "127.0.0.3")
	res := deliver(t, e.client(t), testMessage("m2", "alice@a.test", "bob@b.test"))
	wantStatus(t, res[0], "2.0.0")
	if res[0].RemoteMTA != "mx.b.test" {
		t.Errorf("delivered by %q, want mx.b.test", res[0].RemoteMTA)
	}
	if e.dns.Queries("A", "mx1.b.test") == 0 {
		t.Error("the preferred MX was never looked up")
	}
}

func TestImplicitMXWhenTheDomainHasNoMX(t *testing.T) {
	e := newEnv(t)
	e.dns.SetMX("b.test") // NODATA for MX
	e.dns.SetA("b.test", "127.0.0.2")
	res := deliver(t, e.client(t), testMessage("m3", "alice@a.test", "bob@b.test"))
	wantStatus(t, res[0], "2.0.0")
	if res[0].RemoteMTA != "b.test" {
		t.Errorf("delivered by %q, want the implicit MX b.test (RFC 5321 5.1)", res[0].RemoteMTA)
	}
}

func TestDNSFailures(t *testing.T) {
	e := newEnv(t)
	e.dns.SetMX("null.test", &net.MX{Host: ".", Pref: 0})
	e.dns.SetServfail("broken.test", true)
	c := e.client(t)
	res := deliver(t, c, testMessage("m4", "alice@a.test", "x@null.test", "x@nowhere.test", "x@broken.test"))
	wantStatus(t, res[0], "5.1.10") // RFC 7505 null MX
	wantStatus(t, res[1], "5.4.4")  // NXDOMAIN
	wantStatus(t, res[2], "4.4.3")  // SERVFAIL: retried
	if res[2].Permanent() || res[2].Delivered() {
		t.Errorf("SERVFAIL must be temporary: %+v", res[2])
	}
	if accepts, _ := e.b.Stats(); accepts != 0 {
		t.Errorf("%d connections to B for domains that are not B's", accepts)
	}
}

func TestServerDownIsTemporary(t *testing.T) {
	e := newEnv(t)
	e.b.Stop()
	res := deliver(t, e.client(t), testMessage("m5", "alice@a.test", "bob@b.test"))
	wantStatus(t, res[0], "4.4.1")
	if !strings.Contains(res[0].Text, "connection refused") {
		t.Errorf("reason %q does not say the connection was refused", res[0].Text)
	}
}

func TestGreetingTimeoutIsTemporary(t *testing.T) {
	e := newEnv(t)
	// A server that accepts the connection and never says anything.
	ln, err := net.Listen("tcp", "127.0.0.4:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c := e.client(t, func(o *delivery.Options) {
		o.Routing.Static = map[string]string{"slow.test": ln.Addr().String()}
		o.Timeouts.Command = 300 * time.Millisecond
	})
	start := time.Now()
	res := deliver(t, c, testMessage("m6", "alice@a.test", "x@slow.test"))
	wantStatus(t, res[0], "4.4.2")
	// Ignoring the option would wait the default 5 minutes; a loaded machine takes seconds.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("gave up after %v, want about the 300 ms command timeout", d)
	}
}

func TestStaticRouteAndConnectionReuse(t *testing.T) {
	e := newEnv(t)
	e.dns.SetMX("b.test") // DNS would not find B: only the static route does
	c := e.client(t, func(o *delivery.Options) {
		o.Routing.Static = map[string]string{"b.test": e.b.Addr}
	})
	for i := range 3 {
		res := deliver(t, c, testMessage("reuse"+string(rune('a'+i)), "alice@a.test", "bob@b.test"))
		wantStatus(t, res[0], "2.0.0")
	}
	e.b.WaitInbox("bob@b.test", 3, 30*time.Second)
	if accepts, _ := e.b.Stats(); accepts != 1 {
		t.Errorf("3 messages took %d connections, want 1 reused", accepts)
	}
}

func TestConcurrencyLimitPerHost(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, func(o *delivery.Options) { o.MaxConnsPerHost = 2 })
	var wg sync.WaitGroup
	const n = 8
	for i := range n {
		wg.Go(func() {
			res := deliver(t, c, testMessage("conc"+string(rune('a'+i)), "alice@a.test", "bob@b.test"))
			wantStatus(t, res[0], "2.0.0")
		})
	}
	wg.Wait()
	e.b.WaitInbox("bob@b.test", n, 30*time.Second)
	if _, maxOpen := e.b.Stats(); maxOpen > 2 {
		t.Errorf("%d connections open at once, limit 2", maxOpen)
	}
}

func TestManyRecipientsTakeSeveralTransactions(t *testing.T) {
	e := newEnv(t)
	cfg := deliverytest.Mailboxes(t, "c.test", "u")
	c2 := deliverytest.StartMX(t, "mx.c.test", "127.0.0.5", e.port, cfg)
	_ = c2
	e.dns.SetMX("c.test", &net.MX{Host: "mx.c.test", Pref: 10})
	e.dns.SetA("mx.c.test", "127.0.0.5")
	var rcpts []string
	for range 150 {
		rcpts = append(rcpts, "u@c.test") // the same mailbox: one copy per transaction
	}
	res := deliver(t, e.client(t), testMessage("many", "alice@a.test", rcpts...))
	for _, r := range res {
		wantStatus(t, r, "2.0.0")
	}
	// 150 recipients: a transaction of 100 and one of 50, each one copy in the mailbox.
	if n := len(c2.WaitInbox("u@c.test", 2, 30*time.Second)); n != 2 {
		t.Errorf("%d copies, want 2 transactions", n)
	}
}

func TestOpportunisticTLSFallsBackToPlainText(t *testing.T) {
	e := newEnv(t)
	e.b.Stop()
	// B offers STARTTLS but every handshake fails (no usable certificate).
	e.b.SetTLS(&tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return nil, errors.New("no certificate")
	}})
	e.b.Start()
	res := deliver(t, e.client(t), testMessage("fallback", "alice@a.test", "bob@b.test"))
	wantStatus(t, res[0], "2.0.0")
	msgs := e.b.WaitInbox("bob@b.test", 1, 30*time.Second)
	if !strings.Contains(msgs[0], "with ESMTP id") {
		t.Errorf("want the message in plain text (ESMTP) after the failed handshake:\n%s", msgs[0])
	}
	if accepts, _ := e.b.Stats(); accepts != 2 {
		t.Errorf("%d connections, want the failed TLS one and the plain one", accepts)
	}
}

func TestAClosedIdleConnectionIsReplaced(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, func(o *delivery.Options) { o.IdleTimeout = time.Minute })
	wantStatus(t, deliver(t, c, testMessage("before", "alice@a.test", "bob@b.test"))[0], "2.0.0")
	// B restarts: the idle connection A keeps is dead.
	e.b.Stop()
	e.b.Start()
	wantStatus(t, deliver(t, c, testMessage("after", "alice@a.test", "bob@b.test"))[0], "2.0.0")
	if n := len(e.b.WaitInbox("bob@b.test", 2, 30*time.Second)); n != 2 {
		t.Errorf("bob has %d messages, want 2", n)
	}
}

func TestRecipientLimitOfTheServerTakesFurtherTransactions(t *testing.T) {
	e := newEnv(t)
	locals := []string{"u1", "u2", "u3", "u4", "u5", "u6", "u7"}
	cfg := deliverytest.Mailboxes(t, "d.test", locals...)
	cfg.Domains[0].MaxRecipients = 3 // the 4th RCPT of a transaction gets 452 4.5.3
	d := deliverytest.StartMX(t, "mx.d.test", "127.0.0.8", e.port, cfg)
	e.dns.SetMX("d.test", &net.MX{Host: "mx.d.test", Pref: 10})
	e.dns.SetA("mx.d.test", "127.0.0.8")
	var rcpts []string
	for _, l := range locals {
		rcpts = append(rcpts, l+"@d.test")
	}
	res := deliver(t, e.client(t), testMessage("limited", "alice@a.test", rcpts...))
	for _, r := range res {
		wantStatus(t, r, "2.0.0")
	}
	for _, r := range rcpts {
		if n := len(d.Inbox(r)); n != 1 {
			t.Errorf("%s has %d messages, want 1", r, n)
		}
	}
	if accepts, _ := d.Stats(); accepts != 1 {
		t.Errorf("%d connections, want the three transactions on one", accepts)
	}
}
