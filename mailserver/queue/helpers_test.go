package queue_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
	"github.com/kubemail/kubemail/mailserver/queue"
)

// world is server A (a.test, mailbox alice; its queue under test) and the remote servers it
// sends to: B (b.test: bob) on 127.0.0.2 and C (c.test: carol) on 127.0.0.3, both real kubemail
// MX servers on the same port, found through a miekg/dns test server.
type world struct {
	t    *testing.T
	dns  *dnstest.Server
	a    *deliverytest.Server // A's store and config (its MX is not used)
	b, c *deliverytest.Server
	dir  string // A's queue dir
	logs *deliverytest.LogBuffer
	cl   *delivery.Client
	// drain is the queues' DrainTimeout; 0 takes the default.
	drain time.Duration
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, dns: dnstest.Start(t), logs: &deliverytest.LogBuffer{}}
	port := deliverytest.FreePort(t, "127.0.0.2")
	w.b = deliverytest.StartMX(t, "mx.b.test", "127.0.0.2", port, deliverytest.Mailboxes(t, "b.test", "bob"))
	w.c = deliverytest.StartMX(t, "mx.c.test", "127.0.0.3", port, deliverytest.Mailboxes(t, "c.test", "carol"))
	w.a = deliverytest.StartMX(t, "mx.a.test", "127.0.0.6", 0, deliverytest.Mailboxes(t, "a.test", "alice"))
	for _, d := range []string{"b", "c"} {
		w.dns.SetMX(d+".test", &net.MX{Host: "mx." + d + ".test", Pref: 10})
	}
	w.dns.SetA("mx.b.test", "127.0.0.2")
	w.dns.SetA("mx.c.test", "127.0.0.3")
	w.dir = w.a.DataDir + "/queue"
	w.cl = w.client(5 * time.Second)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("QUEUE_TEST_LOGS") != "" {
			t.Logf("A's log:\n%s", w.logs.String())
		}
	})
	return w
}

// client is A's transport, waiting up to timeout for each reply; it is closed when the test ends.
func (w *world) client(timeout time.Duration) *delivery.Client {
	cl := delivery.New(delivery.Options{
		Hostname: "mx.a.test",
		Live:     w.a.Live,
		Local:    w.a.Store,
		Resolver: delivery.NewResolver(w.dns.Addr),
		MXPort:   w.b.Port(),
		Timeouts: delivery.Timeouts{Connect: 2 * time.Second, Command: timeout, DataInit: timeout, Block: timeout, DataEnd: timeout},
		Logger:   w.logger(),
	})
	w.t.Cleanup(cl.Close)
	return cl
}

func (w *world) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fast is a retry policy for tests: retries within tens of milliseconds.
var fast = queue.RetryPolicy{InitialInterval: 30 * time.Millisecond, MaxInterval: 100 * time.Millisecond, Lifetime: time.Hour, DelayWarningAfter: time.Hour}

// open opens A's queue without running it.
func (w *world) open(p queue.RetryPolicy) *queue.Queue {
	w.t.Helper()
	q, err := queue.Open(w.dir, queue.Options{Hostname: "mx.a.test", Retry: p, Transport: w.cl, Live: w.a.Live, Local: w.a.Store, Logger: w.logger(), DrainTimeout: w.drain})
	if err != nil {
		w.t.Fatal(err)
	}
	return q
}

// run runs q until the test ends.
func (w *world) run(q *queue.Queue) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Run(ctx)
	}()
	w.t.Cleanup(func() {
		cancel()
		<-done
	})
}

// testMessage is the prefix and body enqueue queues.
func testMessage(from, subject, rcpt string) (prefix, body string) {
	prefix = "Received: from client.a.test by mx.a.test (kubemail) with ESMTPSA id TEST; Thu, 26 Nov 2026 10:00:00 +0000\r\n"
	body = "From: <" + from + ">\r\nTo: <" + rcpt + ">\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@a.test>\r\n\r\nBody of " + subject + ".\r\n"
	return prefix, body
}

func (w *world) enqueue(q *queue.Queue, from, subject string, rcpts ...string) string {
	w.t.Helper()
	prefix, body := testMessage(from, subject, rcpts[0])
	id, err := q.Enqueue(context.Background(), from, rcpts, []byte(prefix), strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitEmpty(t *testing.T, q *queue.Queue) {
	t.Helper()
	eventually(t, time.Minute, "an empty queue", func() bool { return q.Len() == 0 }) // 200 messages with -race, loaded
}

// report is a parsed delivery status notification.
type report struct {
	header     message.Header
	perMessage textproto.MIMEHeader
	rcpts      []textproto.MIMEHeader
	original   string // the text/rfc822-headers part
}

// parseDSN checks the RFC 3464 / RFC 6522 structure of msg and returns its fields.
func parseDSN(t *testing.T, msg string) report {
	t.Helper()
	e, err := message.Read(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("parsing the notice: %v\n%s", err, msg)
	}
	var r report
	r.header = e.Header
	ct, params, err := e.Header.ContentType()
	if err != nil || ct != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("notice Content-Type %q %v (%v), want multipart/report; report-type=delivery-status", ct, params, err)
	}
	mr := e.MultipartReader()
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pct, _, _ := p.Header.ContentType()
		types = append(types, pct)
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch pct {
		case "message/delivery-status":
			// RFC 3464 2.1: blocks of header fields separated by blank lines.
			blocks := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(body), "\r\n", "\n")), "\n\n")
			for i, b := range blocks {
				h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(b + "\n\n"))).ReadMIMEHeader()
				if err != nil {
					t.Fatalf("delivery-status block %d: %v\n%s", i, err, b)
				}
				if i == 0 {
					r.perMessage = h
				} else {
					r.rcpts = append(r.rcpts, h)
				}
			}
		case "text/rfc822-headers":
			r.original = string(body)
		}
	}
	if strings.Join(types, ",") != "text/plain,message/delivery-status,text/rfc822-headers" {
		t.Fatalf("notice parts %v", types)
	}
	if r.perMessage.Get("Reporting-MTA") != "dns; mx.a.test" {
		t.Errorf("Reporting-MTA %q", r.perMessage.Get("Reporting-MTA"))
	}
	if !strings.Contains(r.header.Get("From"), "MAILER-DAEMON@mx.a.test") || r.header.Get("Auto-Submitted") != "auto-replied" {
		t.Errorf("notice From %q, Auto-Submitted %q", r.header.Get("From"), r.header.Get("Auto-Submitted"))
	}
	return r
}
