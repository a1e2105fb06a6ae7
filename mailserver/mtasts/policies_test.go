package mtasts_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
	"github.com/kubemail/kubemail/mailserver/mtasts"
)

const enforceB = "version: STSv1\r\nmode: enforce\r\nmx: mx.b.test\r\nmax_age: 86400\r\n"

// world: DNS with _mta-sts.b.test and mta-sts.b.test on 127.0.0.4, where an HTTPS server with a
// certificate from the test CA serves the policy.
type world struct {
	dns    *dnstest.Server
	ca     *deliverytest.CA
	policy *deliverytest.PolicyServer
	logs   *deliverytest.LogBuffer
}

func newWorld(t *testing.T) *world {
	w := &world{dns: dnstest.Start(t), ca: deliverytest.NewCA(t), logs: &deliverytest.LogBuffer{}}
	w.policy = deliverytest.StartPolicyServer(t, w.ca, "127.0.0.4", "mta-sts.b.test")
	w.policy.Set(enforceB)
	w.dns.SetA("mta-sts.b.test", "127.0.0.4")
	w.dns.SetTXT("_mta-sts.b.test", "v=STSv1; id=one;")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", w.logs.String())
		}
	})
	return w
}

// uncached is a resolver without the answer cache: the test DNS server gives every record a
// 60 s TTL, and these tests change records within that.
func (w *world) uncached() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, w.dns.Addr)
	}}
}

func (w *world) policies(mod ...func(*mtasts.Options)) *mtasts.Policies {
	o := mtasts.Options{Resolver: w.uncached(), RootCAs: w.ca.Pool(), HTTPSPort: w.policy.Port(),
		RetryFetch: -1, Logger: slog.New(slog.NewTextHandler(w.logs, nil))}
	for _, m := range mod {
		m(&o)
	}
	return mtasts.New(o)
}

func lookup(t *testing.T, p *mtasts.Policies, domain string) *mtasts.Policy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return p.Lookup(ctx, domain)
}

func TestLookupFetchesOnceAndRefetchesWhenTheIDChanges(t *testing.T) {
	w := newWorld(t)
	p := w.policies()
	pol := lookup(t, p, "b.test")
	if pol == nil || pol.Mode != mtasts.Enforce || pol.ID != "one" || !pol.Match("mx.b.test") {
		t.Fatalf("policy %+v", pol)
	}
	// The same id: the cached policy, no HTTPS request, even if the file changed.
	w.policy.Set(strings.Replace(enforceB, "enforce", "testing", 1))
	if pol := lookup(t, p, "B.test."); pol == nil || pol.Mode != mtasts.Enforce {
		t.Fatalf("with the same id: %+v", pol)
	}
	if n := w.policy.Requests(); n != 1 {
		t.Errorf("%d fetches with an unchanged id, want 1", n)
	}
	// A new id: fetched again.
	w.dns.SetTXT("_mta-sts.b.test", "v=STSv1; id=two;")
	if pol := lookup(t, p, "b.test"); pol == nil || pol.Mode != mtasts.Testing || pol.ID != "two" {
		t.Fatalf("after the id changed: %+v", pol)
	}
	if n := w.policy.Requests(); n != 2 {
		t.Errorf("%d fetches after the id changed, want 2", n)
	}
	// mode none replaces it (how a domain withdraws its policy, RFC 8461 8.3).
	w.policy.Set("version: STSv1\nmode: none\nmax_age: 86400\n")
	w.dns.SetTXT("_mta-sts.b.test", "v=STSv1; id=three;")
	if pol := lookup(t, p, "b.test"); pol == nil || pol.Mode != mtasts.None {
		t.Fatalf("after mode none: %+v", pol)
	}
}

func TestLookupWithoutARecordIsNoPolicy(t *testing.T) {
	w := newWorld(t)
	if pol := lookup(t, w.policies(), "c.test"); pol != nil {
		t.Fatalf("c.test publishes nothing, got %+v", pol)
	}
	if n := w.policy.Requests(); n != 0 {
		t.Errorf("%d fetches for a domain without a record", n)
	}
}

func TestMalformedPoliciesAreNoPolicy(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name, contentType, location, body string
		status                            int
	}{
		{"bad version", "text/plain", "", strings.Replace(enforceB, "STSv1", "STSv2", 1), 200},
		{"garbage", "text/plain", "", "\x00\xff\xfe not a policy at all", 200},
		{"HTML", "text/html", "", enforceB, 200},
		{"not found", "text/plain", "", enforceB, 404},
		{"redirect", "text/plain", "https://mta-sts.b.test/elsewhere", enforceB, 302},
		{"too large", "text/plain", "", enforceB + strings.Repeat("x-pad: padding padding\r\n", 3000), 200},
	} {
		w.policy.SetResponse(tc.status, tc.contentType, tc.location, tc.body)
		before := len(w.logs.String())
		if pol := lookup(t, w.policies(), "b.test"); pol != nil {
			t.Errorf("%s: got %+v, want no policy", tc.name, pol)
		}
		if logged := w.logs.String()[before:]; !strings.Contains(logged, "Fetching the MTA-STS policy failed") {
			t.Errorf("%s: no log line:\n%s", tc.name, logged)
		}
	}
	// Malformed TXT records: no policy, and no fetch.
	w.policy.Set(enforceB)
	requests := w.policy.Requests()
	for _, txt := range [][]string{{"v=STSv1; id=a;", "v=STSv1; id=b;"}, {"v=STSv1; id=not-alnum;"}} {
		w.dns.SetTXT("_mta-sts.b.test", txt...)
		if pol := lookup(t, w.policies(), "b.test"); pol != nil {
			t.Errorf("TXT %q: got %+v, want no policy", txt, pol)
		}
	}
	if n := w.policy.Requests() - requests; n != 0 {
		t.Errorf("%d fetches for malformed records", n)
	}
}

func TestPolicyHostCertificateMustBeValidForItsName(t *testing.T) {
	w := newWorld(t)
	other := deliverytest.StartPolicyServer(t, w.ca, "127.0.0.5", "mta-sts.elsewhere.test")
	other.Set(enforceB)
	w.dns.SetA("mta-sts.b.test", "127.0.0.5")
	p := w.policies(func(o *mtasts.Options) { o.HTTPSPort = other.Port() })
	if pol := lookup(t, p, "b.test"); pol != nil {
		t.Fatalf("a policy from a host whose certificate is for another name: %+v", pol)
	}
	if !strings.Contains(w.logs.String(), "certificate") {
		t.Errorf("the log does not say the certificate was wrong:\n%s", w.logs.String())
	}
}

func TestKeptPoliciesSurviveARestartAndExpire(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	now := time.Now()
	clock := func() time.Time { return now }
	withDir := func(o *mtasts.Options) { o.Dir, o.Now = dir, clock }
	if pol := lookup(t, w.policies(withDir), "b.test"); pol == nil || pol.Mode != mtasts.Enforce {
		t.Fatalf("policy %+v", pol)
	}
	// Restart with the TXT record gone and the policy host down: the kept policy applies.
	w.dns.Remove("_mta-sts.b.test", "TXT")
	w.policy.Stop()
	if pol := lookup(t, w.policies(withDir), "b.test"); pol == nil || pol.Mode != mtasts.Enforce || pol.ID != "one" {
		t.Fatalf("after a restart: %+v", pol)
	}
	// A damaged file is dropped, not fatal.
	if err := os.WriteFile(filepath.Join(dir, "d.test.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Past max_age it expires: dropped from memory and disk.
	now = now.Add(86401 * time.Second)
	if pol := lookup(t, w.policies(withDir), "b.test"); pol != nil {
		t.Fatalf("expired policy still applied: %+v", pol)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("files left in %s: %v", dir, files)
	}
}

func TestConcurrentLookupsShareOneFetch(t *testing.T) {
	w := newWorld(t)
	p := w.policies()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if pol := lookup(t, p, "b.test"); pol == nil {
				t.Error("no policy")
			}
		})
	}
	wg.Wait()
	if n := w.policy.Requests(); n != 1 {
		t.Errorf("%d fetches for 20 concurrent lookups, want 1", n)
	}
}

// A fetch that fails is not tried again for RetryFetch, and a fetch is bounded by FetchTimeout.
func TestFailedFetchesAreNotRepeatedAtOnce(t *testing.T) {
	w := newWorld(t)
	w.policy.SetResponse(http.StatusInternalServerError, "text/plain", "", "")
	p := w.policies(func(o *mtasts.Options) { o.RetryFetch = time.Hour })
	for range 3 {
		if pol := lookup(t, p, "b.test"); pol != nil {
			t.Fatalf("policy %+v from a 500", pol)
		}
	}
	if n := w.policy.Requests(); n != 1 {
		t.Errorf("%d fetches, want 1 within RetryFetch", n)
	}
}

// An SMTPUTF8 recipient's domain is looked up by its A-labels.
func TestLookupOfAnInternationalizedDomain(t *testing.T) {
	w := newWorld(t)
	idn := deliverytest.StartPolicyServer(t, w.ca, "127.0.0.4", "mta-sts.xn--bcher-kva.test")
	idn.Set(strings.Replace(enforceB, "mx.b.test", "mx.xn--bcher-kva.test", 1))
	w.dns.SetA("mta-sts.xn--bcher-kva.test", "127.0.0.4")
	w.dns.SetTXT("_mta-sts.xn--bcher-kva.test", "v=STSv1; id=1;")
	p := w.policies(func(o *mtasts.Options) { o.HTTPSPort = idn.Port() })
	if pol := lookup(t, p, "Bücher.test"); pol == nil || !pol.Match("mx.xn--bcher-kva.test") {
		t.Fatalf("policy %+v", pol)
	}
}
