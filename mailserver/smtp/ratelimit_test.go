package smtp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// fakeClock is the rate limiter's clock in tests: it moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func useClock(live *config.Live) *fakeClock {
	clock := &fakeClock{now: time.Now()}
	l := limiterFor(live)
	l.mu.Lock()
	l.now = clock.Now
	l.mu.Unlock()
	return clock
}

// login opens an authenticated submission session as user (password "<local>-password").
func login(t *testing.T, addr string, implicitTLS bool, s *testServer, user string) *gosmtp.Client {
	t.Helper()
	var c *gosmtp.Client
	var err error
	if implicitTLS {
		c, err = gosmtp.DialTLS(addr, s.client)
	} else {
		c, err = gosmtp.DialStartTLS(addr, s.client)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	local, _, _ := strings.Cut(user, "@")
	if err := c.Auth(sasl.NewPlainClient("", user, local+"-password")); err != nil {
		t.Fatal(err)
	}
	return c
}

// send submits one message from from to to on c; a refusal of MAIL is returned as it is.
func send(c *gosmtp.Client, from, to, subject string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nHello.\r\n", from, to, subject)
	return w.Close()
}

func expectRateLimited(t *testing.T, err error, what string) {
	t.Helper()
	var serr *gosmtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != 450 || serr.EnhancedCode != (gosmtp.EnhancedCode{4, 7, 1}) {
		t.Fatalf("%s: %v, want 450 4.7.1", what, err)
	}
}

func TestSubmissionRateLimitPerUser(t *testing.T) {
	s := startServer(t, true, false)
	cfg := testConfig(t)
	cfg.RelayPolicies = []config.RelayPolicy{
		{Name: "all", MessagesPerMinutePerSender: 5},                                    // every sender
		{Name: "small", Domains: []string{"small.test"}, MessagesPerMinutePerSender: 3}, // the smaller wins
	}
	s.live.Store(config.NewDirectory(cfg)) // as a reload does: the next MAIL sees it
	clock := useClock(s.live)
	authOK := testutil.ToFloat64(metrics.SMTPAuth.WithLabelValues("submission", metrics.ResultOK))

	carol := login(t, s.addr, false, s, "carol@small.test")
	for i := range 3 {
		if err := send(carol, "carol@small.test", "dave@small.test", fmt.Sprint("burst ", i)); err != nil {
			t.Fatalf("message %d of the burst: %v", i+1, err)
		}
	}
	expectRateLimited(t, send(carol, "carol@small.test", "dave@small.test", "over"), "carol's 4th message in a minute")
	s.waitLog("Rejected sender", "code=450", "from=carol@small.test", "rate limit of 3 messages a minute")
	if got := len(s.maildir("dave@small.test")); got != 3 {
		t.Errorf("dave has %d messages, want the 3 of the burst", got)
	}

	// Another user of the same domain has a bucket of its own.
	dave := login(t, s.addr, false, s, "dave@small.test")
	if err := send(dave, "dave@small.test", "carol@small.test", "dave's"); err != nil {
		t.Fatalf("dave: %v", err)
	}

	// The 465 server on the same config shares carol's bucket.
	srv465 := NewSubmission(Options{Hostname: testHostname, Live: s.live, Store: nil, Auth: auth.NewAuthenticator(s.live), TLS: s.tls})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv465.Serve(tls.NewListener(ln, s.tls))
	t.Cleanup(func() { srv465.Close(); ln.Close() })
	carol465 := login(t, ln.Addr().String(), true, s, "carol@small.test")
	expectRateLimited(t, carol465.Mail("carol@small.test", nil), "carol on 465")

	// 3 a minute: one more after 20 s, and only one.
	clock.Add(20 * time.Second)
	if err := carol.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := send(carol, "carol@small.test", "dave@small.test", "refilled"); err != nil {
		t.Fatalf("after 20 s: %v", err)
	}
	expectRateLimited(t, send(carol, "carol@small.test", "dave@small.test", "over again"), "the second message after 20 s")

	// example.test falls under the policy for all senders only: 5 a minute. MAIL counts, sent or not.
	alice := login(t, s.addr, false, s, "alice@example.test")
	for i := range 5 {
		if err := alice.Mail("postmaster@example.test", nil); err != nil { // an alias shares the bucket
			t.Fatalf("alice's MAIL %d: %v", i+1, err)
		}
		if err := alice.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	expectRateLimited(t, alice.Mail("alice@example.test", nil), "alice's 6th MAIL")

	// A sender that is not the user's is refused for that, and takes no token.
	var serr *gosmtp.SMTPError
	if err := dave.Mail("carol@small.test", nil); !errors.As(err, &serr) || serr.Code != 553 {
		t.Errorf("dave as carol: %v, want 553", err)
	}

	// No policy, no limit.
	s.live.Store(config.NewDirectory(testConfig(t)))
	if err := carol.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := send(carol, "carol@small.test", "dave@small.test", "unlimited"); err != nil {
		t.Errorf("without a policy: %v", err)
	}
	if d := testutil.ToFloat64(metrics.SMTPAuth.WithLabelValues("submission", metrics.ResultOK)) - authOK; d != 4 {
		t.Errorf("kubemail_smtp_auth_total{result=ok} grew by %v, want 4 logins", d)
	}
}

func TestRateLimiterForgetsIdleUsers(t *testing.T) {
	l := newRateLimiter()
	now := time.Now()
	l.now = func() time.Time { return now }
	for i := range 1000 {
		if !l.allow(fmt.Sprint("user", i, "@example.test"), 1) {
			t.Fatal("a first message was refused")
		}
	}
	if l.allow("user0@example.test", 1) {
		t.Fatal("a limit of 1 a minute allowed 2 at once")
	}
	now = now.Add(refillTime)
	if !l.allow("new@example.test", 1) {
		t.Fatal("refused")
	}
	if n := len(l.buckets); n != 1 {
		t.Errorf("%d buckets after a minute of quiet, want only the new user's", n)
	}
	if !l.allow("user0@example.test", 1) {
		t.Error("user0 still refused after a minute")
	}
}
