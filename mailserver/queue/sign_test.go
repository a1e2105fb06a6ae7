package queue_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
	"github.com/kubemail/kubemail/mailserver/queue"
)

// signingQueue opens A's queue as the server does: one signer for the queue (at enqueue) and the
// delivery client (for what came in unsigned).
func (w *world) signingQueue(signer delivery.Signer) *queue.Queue {
	w.t.Helper()
	cl := delivery.New(delivery.Options{
		Hostname: "mx.a.test", Live: w.a.Live, Local: w.a.Store, Resolver: delivery.NewResolver(w.dns.Addr), MXPort: w.b.Port(),
		DKIM: signer, Logger: w.logger(),
		Timeouts: delivery.Timeouts{Connect: 2 * time.Second, Command: 5 * time.Second, DataInit: 5 * time.Second, Block: 5 * time.Second, DataEnd: 5 * time.Second},
	})
	w.t.Cleanup(cl.Close)
	q, err := queue.Open(w.dir, queue.Options{Hostname: "mx.a.test", Retry: fast, Transport: cl, Live: w.a.Live,
		Local: w.a.Store, Signer: signer, Logger: w.logger()})
	if err != nil {
		w.t.Fatal(err)
	}
	return q
}

// verifyOnce checks that msg carries exactly one DKIM-Signature, by a.test, and that it verifies.
func verifyOnce(t *testing.T, signer *deliverytest.Signer, msg string) {
	t.Helper()
	if n := strings.Count(msg, "DKIM-Signature:"); n != 1 {
		t.Errorf("%d DKIM-Signature fields, want 1:\n%s", n, msg)
	}
	signer.Verify(t, "a.test", msg)
}

// A message is signed once, as it is queued: retries, a restart of the queue in between and
// the record written after the failed attempt do not sign it again; B gets one signature that
// verifies; the copy for our own mailbox goes in unsigned.
func TestSignedOnceAtEnqueue(t *testing.T) {
	w := newWorld(t)
	signer := deliverytest.NewSigner(t, w.a.Live)

	w.b.Stop()
	q := w.signingQueue(signer)
	id := w.enqueue(q, "alice@a.test", "signed-once", "bob@b.test", "alice@a.test")
	if n := signer.Count(); n != 1 {
		t.Fatalf("signed %d times at enqueue, want 1", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); q.Run(ctx) }()
	eventually(t, 30*time.Second, "a failed attempt for bob", func() bool {
		for _, m := range q.List() {
			if m.ID == id && m.Attempts > 0 {
				return true
			}
		}
		return false
	})
	cancel()
	<-done

	w.b.Start()
	q = w.signingQueue(signer) // recovered from disk: the record carries the signature
	w.run(q)
	waitEmpty(t, q)
	msgs := w.b.WaitInbox("bob@b.test", 1, 30*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("bob has %d messages, want 1", len(msgs))
	}
	verifyOnce(t, signer, msgs[0])
	if n := signer.Count(); n != 1 {
		t.Errorf("signed %d times in all, want 1 (at enqueue)", n)
	}
	local := w.a.WaitInbox("alice@a.test", 1, 30*time.Second)
	if len(local) != 1 || strings.Contains(local[0], "DKIM-Signature:") {
		t.Errorf("alice's copy (%d messages) should be there, unsigned:\n%s", len(local), strings.Join(local, "\n---\n"))
	}
}

// A message larger than SignInMemory is queued as it streams in and signed on its way out,
// once.
func TestLargeMessageSignedAtSend(t *testing.T) {
	w := newWorld(t)
	signer := deliverytest.NewSigner(t, w.a.Live)
	q := w.signingQueue(signer)
	prefix, body := testMessage("alice@a.test", "large", "bob@b.test")
	body += strings.Repeat("A line of the large message, long enough to pass the in-memory limit.\r\n", queue.SignInMemory/64)
	if _, err := q.Enqueue(context.Background(), "alice@a.test", []string{"bob@b.test"}, []byte(prefix), strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if n := signer.Count(); n != 0 {
		t.Fatalf("a message over SignInMemory was signed %d times at enqueue, want 0", n)
	}
	w.run(q)
	waitEmpty(t, q)
	msgs := w.b.WaitInbox("bob@b.test", 1, 30*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("bob has %d messages, want 1", len(msgs))
	}
	verifyOnce(t, signer, msgs[0])
	if !strings.Contains(msgs[0], "A line of the large message") || len(msgs[0]) < queue.SignInMemory {
		t.Errorf("the large message arrived short: %d bytes", len(msgs[0]))
	}
}
