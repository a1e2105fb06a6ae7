package delivery_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
	"github.com/kubemail/kubemail/mailserver/mtasts"
)

// stsEnv is newEnv's world with MTA-STS for b.test: a test CA, the policy host mta-sts.b.test
// on 127.0.0.4 (HTTPS, a certificate from the CA) and the TXT record _mta-sts.b.test. B's MX
// keeps its self-signed certificate (not valid under a policy) until useCert.
type stsEnv struct {
	*env
	ca     *deliverytest.CA
	policy *deliverytest.PolicyServer
	logs   *deliverytest.LogBuffer
}

func newSTSEnv(t *testing.T, mode string) *stsEnv {
	s := &stsEnv{env: newEnv(t), ca: deliverytest.NewCA(t), logs: &deliverytest.LogBuffer{}}
	s.policy = deliverytest.StartPolicyServer(t, s.ca, "127.0.0.4", "mta-sts.b.test")
	s.dns.SetA("mta-sts.b.test", "127.0.0.4")
	s.dns.SetTXT("_mta-sts.b.test", "v=STSv1; id=20260101T000000;")
	s.policy.Set(stsPolicy(mode, "mx.b.test"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sender's log:\n%s", s.logs.String())
		}
	})
	return s
}

func stsPolicy(mode string, mx ...string) string {
	p := "version: STSv1\r\nmode: " + mode + "\r\n"
	for _, m := range mx {
		p += "mx: " + m + "\r\n"
	}
	return p + "max_age: 86400\r\n"
}

// policies returns the sender's policy cache, kept in dir ("" for memory only).
func (s *stsEnv) policies(dir string) *mtasts.Policies {
	return mtasts.New(mtasts.Options{Resolver: delivery.NewResolver(s.dns.Addr), RootCAs: s.ca.Pool(), Dir: dir,
		HTTPSPort: s.policy.Port(), Logger: s.logger()})
}

// client is a delivery client trusting the test CA only, with pols.
func (s *stsEnv) client(t *testing.T, pols *mtasts.Policies) *delivery.Client {
	return s.env.client(t, func(o *delivery.Options) {
		o.RootCAs = s.ca.ClientTLS()
		o.MTASTS = pols
		o.Logger = s.logger()
		o.IdleTimeout = -1 // every delivery opens its own session
	})
}

func (s *stsEnv) logger() *slog.Logger { return slog.New(slog.NewTextHandler(s.logs, nil)) }

// useCert restarts B's MX with a certificate from the CA for names (none: no STARTTLS at all).
func (s *stsEnv) useCert(names ...string) {
	s.b.Stop()
	if len(names) == 0 {
		s.b.SetTLS(nil)
	} else {
		s.b.SetTLS(s.ca.ServerTLS(names...))
	}
	s.b.Start()
}

func stsCount(mode, result string) float64 {
	return testutil.ToFloat64(delivery.MTASTSResults.WithLabelValues(mode, result))
}

func wantDeferred(t *testing.T, r delivery.Result, status, text string) {
	t.Helper()
	if r.Status != status || r.Delivered() || r.Permanent() || !strings.Contains(r.Text, text) {
		t.Errorf("%s: %s, want a temporary failure %s with %q", r.Rcpt, r, status, text)
	}
}

func TestMTASTSEnforceDeliversOverVerifiedTLS(t *testing.T) {
	s := newSTSEnv(t, "enforce")
	s.useCert("mx.b.test")
	verified := stsCount("enforce", "verified")
	res := deliver(t, s.client(t, s.policies("")), testMessage("sts1", "alice@a.test", "bob@b.test"))
	wantStatus(t, res[0], "2.0.0")
	msgs := s.b.WaitInbox("bob@b.test", 1, 30*time.Second)
	if !strings.Contains(msgs[0], "with ESMTPS") {
		t.Errorf("message did not arrive over TLS:\n%s", msgs[0])
	}
	if d := stsCount("enforce", "verified") - verified; d != 1 {
		t.Errorf("enforce/verified grew by %v, want 1", d)
	}
	if n := s.policy.Requests(); n != 1 {
		t.Errorf("%d policy fetches, want 1", n)
	}
}

func TestMTASTSEnforceDefersACertificateForAnotherName(t *testing.T) {
	s := newSTSEnv(t, "enforce")
	s.useCert("other.b.test")
	c := s.client(t, s.policies(""))
	failed := stsCount("enforce", "certificate")
	res := deliver(t, c, testMessage("sts2", "alice@a.test", "bob@b.test"))
	wantDeferred(t, res[0], "4.7.5", "MTA-STS: certificate not valid for mx.b.test")
	if !strings.Contains(s.logs.String(), "MTA-STS: certificate not valid for mx.b.test") {
		t.Errorf("the attempt's log line does not say why:\n%s", s.logs.String())
	}
	if n := len(s.b.Inbox("bob@b.test")); n != 0 {
		t.Fatalf("bob got %d messages from a host whose certificate is not valid", n)
	}
	// Not retried in plain text either: the one session B saw was the failed handshake.
	if accepts, _ := s.b.Stats(); accepts != 1 {
		t.Errorf("B accepted %d connections, want 1 (no plain-text retry)", accepts)
	}
	if d := stsCount("enforce", "certificate") - failed; d != 1 {
		t.Errorf("enforce/certificate grew by %v, want 1", d)
	}
	// Once B presents the right certificate, the retry gets through.
	s.useCert("mx.b.test")
	wantStatus(t, deliver(t, c, testMessage("sts2", "alice@a.test", "bob@b.test"))[0], "2.0.0")
	s.b.WaitInbox("bob@b.test", 1, 30*time.Second)
}

func TestMTASTSEnforceDefersAnMXNotInThePolicy(t *testing.T) {
	s := newSTSEnv(t, "enforce")
	s.policy.Set(stsPolicy("enforce", "mx.elsewhere.test", "*.mail.b.test"))
	s.useCert("mx.b.test")
	res := deliver(t, s.client(t, s.policies("")), testMessage("sts3", "alice@a.test", "bob@b.test"))
	wantDeferred(t, res[0], "4.7.0", "MTA-STS: no MX host of b.test")
	if accepts, _ := s.b.Stats(); accepts != 0 {
		t.Errorf("B accepted %d connections; an MX outside the policy must not be tried", accepts)
	}
}

func TestMTASTSEnforceDefersAHostWithoutSTARTTLS(t *testing.T) {
	s := newSTSEnv(t, "enforce")
	s.useCert() // no STARTTLS
	res := deliver(t, s.client(t, s.policies("")), testMessage("sts4", "alice@a.test", "bob@b.test"))
	wantDeferred(t, res[0], "4.7.4", "MTA-STS: mx.b.test does not offer STARTTLS")
	if n := len(s.b.Inbox("bob@b.test")); n != 0 {
		t.Fatalf("bob got %d messages in plain text", n)
	}
}

func TestMTASTSTestingDeliversAndLogs(t *testing.T) {
	s := newSTSEnv(t, "testing")
	s.useCert("other.b.test")
	would := stsCount("testing", "certificate")
	res := deliver(t, s.client(t, s.policies("")), testMessage("sts5", "alice@a.test", "bob@b.test"))
	wantStatus(t, res[0], "2.0.0")
	s.b.WaitInbox("bob@b.test", 1, 30*time.Second)
	if !strings.Contains(s.logs.String(), "MTA-STS testing") || !strings.Contains(s.logs.String(), "certificate not valid for mx.b.test") {
		t.Errorf("no log line of what enforce would have refused:\n%s", s.logs.String())
	}
	if d := stsCount("testing", "certificate") - would; d != 1 {
		t.Errorf("testing/certificate grew by %v, want 1", d)
	}
}

func TestMTASTSCachedPolicyOutlivesTheRecordAndTheHost(t *testing.T) {
	s := newSTSEnv(t, "enforce")
	s.useCert("other.b.test")
	dir := t.TempDir()
	c := s.client(t, s.policies(dir))
	wantDeferred(t, deliver(t, c, testMessage("sts6", "alice@a.test", "bob@b.test"))[0], "4.7.5", "certificate not valid")

	// An attacker strips the TXT record and blocks the policy host: the kept policy holds.
	s.dns.Remove("_mta-sts.b.test", "TXT")
	s.policy.Stop()
	wantDeferred(t, deliver(t, c, testMessage("sts6b", "alice@a.test", "bob@b.test"))[0], "4.7.5", "certificate not valid")

	// So it does after a restart: a new cache over the same directory.
	restarted := s.client(t, s.policies(dir))
	wantDeferred(t, deliver(t, restarted, testMessage("sts6c", "alice@a.test", "bob@b.test"))[0], "4.7.5", "certificate not valid")
	if n := len(s.b.Inbox("bob@b.test")); n != 0 {
		t.Fatalf("bob got %d messages from a host whose certificate is not valid", n)
	}
	// Without the kept policy (a fresh data dir) the same delivery goes through: the test
	// could tell the difference.
	fresh := s.client(t, s.policies(t.TempDir()))
	wantStatus(t, deliver(t, fresh, testMessage("sts6d", "alice@a.test", "bob@b.test"))[0], "2.0.0")
}
