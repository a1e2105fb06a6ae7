package dnscheck_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/dnscheck"
	"github.com/kubemail/kubemail/internal/dnstest"
)

// The CNAME record the operator asks for when the load balancer is known by name alone
// (mail.example.com. CNAME the balancer's name): what a zone may have at the host, and what the
// check makes of it.
func TestCNAME(t *testing.T) {
	const target = "lb-1.elb.provider.net."
	rec := v1alpha1.DNSRecord{Name: mailHost, Type: "CNAME", Value: target}
	for _, tc := range []struct {
		name    string
		publish func(s *dnstest.Server)
		outcome dnscheck.Outcome
		found   string
	}{{
		name:    "CNAME to our target",
		publish: func(s *dnstest.Server) { s.SetCNAME(mailHost, target) },
		outcome: dnscheck.OK,
	}, {
		name:    "CNAME to our target, other case, no trailing dot",
		publish: func(s *dnstest.Server) { s.SetCNAME(mailHost, "LB-1.ELB.Provider.NET") },
		outcome: dnscheck.OK,
	}, {
		name: "CNAME to what our target is an alias of",
		publish: func(s *dnstest.Server) {
			s.SetCNAME(target, "lb-1.eu-west-1.provider.net.")
			s.SetCNAME(mailHost, "lb-1.eu-west-1.provider.net.")
		},
		outcome: dnscheck.OK,
	}, {
		name:    "CNAME to another target",
		publish: func(s *dnstest.Server) { s.SetCNAME(mailHost, "old-lb.provider.net.") },
		outcome: dnscheck.Mismatch,
		found:   "found an alias of old-lb.provider.net., not of " + target,
	}, {
		name:    "addresses of its own",
		publish: func(s *dnstest.Server) { s.SetA(mailHost, "198.51.100.7") },
		outcome: dnscheck.Mismatch,
		found:   "found addresses of its own, no CNAME to " + target,
	}, {
		name:    "missing",
		publish: func(s *dnstest.Server) {},
		outcome: dnscheck.Missing,
		found:   "none published",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := dnstest.Start(t)
			// The targets resolve, as a load balancer's names do (SetCNAME replaces the A record).
			s.SetA("lb-1.eu-west-1.provider.net.", "192.0.2.10")
			s.SetA("old-lb.provider.net.", "192.0.2.99")
			s.SetA(target, "192.0.2.10")
			tc.publish(s)
			c := &dnscheck.Checker{Resolver: dnscheck.NewResolver(s.Addr), LookupTimeout: 5 * time.Second}
			r := c.Check(context.Background(), dnscheck.Domain{Name: domain, Records: []v1alpha1.DNSRecord{rec}})
			if len(r.Findings) != 1 {
				t.Fatalf("%d findings for one record", len(r.Findings))
			}
			f := r.Findings[0]
			if f.Outcome != tc.outcome || f.Found != tc.found {
				t.Errorf("finding %d %q, want %d %q", f.Outcome, f.Found, tc.outcome, tc.found)
			}
			_, _, msg := r.Condition()
			if tc.found != "" && !strings.Contains(msg, "CNAME "+mailHost+": "+tc.found) {
				t.Errorf("condition message %q does not name the record and what was found", msg)
			}
		})
	}
}
