package delivery_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
)

// newSigner signs for a.test.
func newSigner(t *testing.T) *deliverytest.Signer {
	return deliverytest.NewSigner(t, config.NewLive(config.NewDirectory(&config.Config{Domains: []config.Domain{{Name: "a.test"}}})))
}

// An attempt that reaches no server signs nothing; the next one, with the server back, signs the
// message once, and what arrives verifies.
func TestSignedOnlyWhenAServerAnswers(t *testing.T) {
	e := newEnv(t)
	signer := newSigner(t)
	c := e.client(t, func(o *delivery.Options) { o.DKIM = signer })

	e.b.Stop()
	res := deliver(t, c, testMessage("s1", "alice@a.test", "bob@b.test"))
	wantStatus(t, res[0], "4.4.1")
	if n := signer.Count(); n != 0 {
		t.Errorf("an attempt that reached no server signed %d times, want 0", n)
	}

	e.b.Start()
	res = deliver(t, c, testMessage("s1", "alice@a.test", "bob@b.test"))
	wantStatus(t, res[0], "2.0.0")
	if n := signer.Count(); n != 1 {
		t.Errorf("signed %d times, want 1", n)
	}
	msgs := e.b.WaitInbox("bob@b.test", 1, 30*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("bob has %d messages", len(msgs))
	}
	// B put its own trace fields on top; the signature covers the fields below them.
	signer.Verify(t, "a.test", msgs[0])
}

// Recipients of two remote domains in one attempt share one signature.
func TestOneSignaturePerAttempt(t *testing.T) {
	e := newEnv(t)
	e.dns.SetMX("c.test", &net.MX{Host: "mx.b.test", Pref: 10}) // served by B, which refuses c.test
	signer := newSigner(t)
	c := e.client(t, func(o *delivery.Options) { o.DKIM = signer })
	res := deliver(t, c, testMessage("s2", "alice@a.test", "bob@b.test", "carol@c.test"))
	wantStatus(t, res[0], "2.0.0")
	if !res[1].Permanent() {
		t.Errorf("carol@c.test: %s, want B's refusal", res[1])
	}
	if n := signer.Count(); n != 1 {
		t.Errorf("signed %d times for two destinations, want 1", n)
	}
	// Not from one of our domains: not signed, but delivered.
	res = deliver(t, c, testMessage("s3", "app@elsewhere.test", "bob@b.test"))
	wantStatus(t, res[0], "2.0.0")
	if n := signer.Count(); n != 1 {
		t.Errorf("a message from another domain was signed (%d signatures in all, want 1)", n)
	}
}

// A message over the size signed from memory is signed as it is read from the queue, and read
// again for sending; it arrives whole and its signature verifies.
func TestLargeMessageSignedFromTheQueue(t *testing.T) {
	e := newEnv(t)
	signer := newSigner(t)
	c := e.client(t, func(o *delivery.Options) { o.DKIM = signer })
	line := strings.Repeat("y", 998) + "\r\n"
	body := "From: <alice@a.test>\r\nTo: <bob@b.test>\r\nSubject: big\r\n\r\n" + strings.Repeat(line, 300) // ~300 KiB
	opens := 0
	m := &delivery.Message{ID: "big", From: "alice@a.test", Rcpts: []string{"bob@b.test"}, Size: int64(len(body)),
		Open: func() (io.ReadCloser, error) { opens++; return io.NopCloser(strings.NewReader(body)), nil }}
	wantStatus(t, deliver(t, c, m)[0], "2.0.0")
	if opens != 2 {
		t.Errorf("the queued message was opened %d times, want 2 (signing, then sending)", opens)
	}
	msgs := e.b.WaitInbox("bob@b.test", 1, 30*time.Second)
	if len(msgs) != 1 || !strings.HasSuffix(msgs[0], strings.Repeat(line, 300)) {
		t.Fatalf("bob has %d messages, or the body did not arrive whole", len(msgs))
	}
	signer.Verify(t, "a.test", msgs[0])
}
