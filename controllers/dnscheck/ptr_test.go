package dnscheck_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/controllers/dnscheck"
	"github.com/kubemail/kubemail/internal/dnstest"
)

// The reverse DNS of the mail server's public address, which the address's owner publishes
// (not the domain's zone): what the owner's PTR and the mail host's addresses may be, and what
// the check makes of them.
func TestPTR(t *testing.T) {
	const (
		ip  = "203.0.113.5"
		ip6 = "2001:db8::25"
		fix = "set the reverse DNS of 203.0.113.5 to mail.example.com. at your cloud provider or IP owner"
	)
	for _, tc := range []struct {
		name    string
		addr    string // ip when empty
		publish func(s *dnstest.Server)
		outcome dnscheck.Outcome
		found   string
		reason  string
	}{{
		name: "PTR to the mail host, which has the address",
		publish: func(s *dnstest.Server) {
			s.AddPTR(ip, mailHost)
			s.SetA(mailHost, ip)
		},
		outcome: dnscheck.OK, reason: dnscheck.ReasonPublished,
	}, {
		name: "PTR to the mail host among others, other case, the host with other addresses too",
		publish: func(s *dnstest.Server) {
			s.AddPTR(ip, "static-5.provider.net.")
			s.AddPTR(ip, "MAIL.Example.COM")
			s.SetA(mailHost, "198.51.100.7", ip, "2001:db8::7")
		},
		outcome: dnscheck.OK, reason: dnscheck.ReasonPublished,
	}, {
		name: "IPv6: PTR in ip6.arpa, confirmed by AAAA",
		addr: ip6,
		publish: func(s *dnstest.Server) {
			s.AddPTR(ip6, mailHost)
			s.SetA(mailHost, ip, ip6)
		},
		outcome: dnscheck.OK, reason: dnscheck.ReasonPublished,
	}, {
		name: "PTR to another name",
		publish: func(s *dnstest.Server) {
			s.AddPTR(ip, "mail.other.net.")
			s.SetA(mailHost, ip)
			s.SetA("mail.other.net.", ip)
		},
		outcome: dnscheck.Mismatch, reason: dnscheck.ReasonRecordsMismatch,
		found: "found mail.other.net., not mail.example.com.: " + fix,
	}, {
		name: "the provider's default names",
		publish: func(s *dnstest.Server) {
			s.AddPTR(ip, "static-5.provider.net.")
			s.AddPTR(ip, "A.Provider.NET")
		},
		outcome: dnscheck.Mismatch, reason: dnscheck.ReasonRecordsMismatch,
		found: "found a.provider.net., static-5.provider.net., not mail.example.com.: " + fix,
	}, {
		name: "PTR to the mail host, which has another address",
		publish: func(s *dnstest.Server) {
			s.AddPTR(ip, mailHost)
			s.SetA(mailHost, "198.51.100.7")
		},
		outcome: dnscheck.Mismatch, reason: dnscheck.ReasonRecordsMismatch,
		found: "mail.example.com. does not resolve back to 203.0.113.5 (it has 198.51.100.7): publish the A record mail.example.com. 203.0.113.5 of status.dnsRecords",
	}, {
		name:    "PTR to the mail host, which has no address",
		publish: func(s *dnstest.Server) { s.AddPTR(ip, mailHost) },
		outcome: dnscheck.Mismatch, reason: dnscheck.ReasonRecordsMismatch,
		found: "mail.example.com. does not resolve back to 203.0.113.5 (it has no address): publish the A record mail.example.com. 203.0.113.5 of status.dnsRecords",
	}, {
		name:    "no PTR",
		publish: func(s *dnstest.Server) { s.SetA(mailHost, ip) },
		outcome: dnscheck.Missing, reason: dnscheck.ReasonRecordsMissing,
		found: "none published: " + fix,
	}, {
		name: "SERVFAIL for the PTR",
		publish: func(s *dnstest.Server) {
			s.AddPTR(ip, mailHost)
			s.SetA(mailHost, ip)
			s.SetServfail("5.113.0.203.in-addr.arpa.", true)
		},
		outcome: dnscheck.Failed, reason: dnscheck.ReasonLookupFailed,
		found: "lookup failed: server misbehaving",
	}, {
		name: "SERVFAIL for the mail host's addresses",
		publish: func(s *dnstest.Server) {
			s.AddPTR(ip, mailHost)
			s.SetServfail(mailHost, true)
		},
		outcome: dnscheck.Failed, reason: dnscheck.ReasonLookupFailed,
		found: "lookup failed: server misbehaving (the addresses of mail.example.com.)",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := dnstest.Start(t)
			tc.publish(s)
			addr := tc.addr
			if addr == "" {
				addr = ip
			}
			c := &dnscheck.Checker{Resolver: dnscheck.NewResolver(s.Addr), LookupTimeout: 5 * time.Second}
			r := c.Check(context.Background(), dnscheck.Domain{Name: domain, MailHost: "mail." + domain,
				Addresses: []netip.Addr{netip.MustParseAddr(addr)}})
			if len(r.Findings) != 1 {
				t.Fatalf("%d findings for one address and no records", len(r.Findings))
			}
			f := r.Findings[0]
			if f.Outcome != tc.outcome || f.Found != tc.found {
				t.Errorf("finding %d %q, want %d %q", f.Outcome, f.Found, tc.outcome, tc.found)
			}
			rev, _ := dns.ReverseAddr(addr)
			if f.Record.Type != "PTR" || f.Record.Name != rev || f.Record.Value != mailHost {
				t.Errorf("the finding's record is %+v, want PTR %s %s", f.Record, rev, mailHost)
			}
			status, reason, msg := r.Condition()
			t.Logf("%s/%s: %s", status, reason, msg)
			if reason != tc.reason {
				t.Errorf("condition %s/%s, want reason %s", status, reason, tc.reason)
			}
			if tc.found != "" && !strings.Contains(msg, "PTR "+addr+": "+tc.found) {
				t.Errorf("condition message %q does not name the address and what was found", msg)
			}
		})
	}
}

// The PTR record is checked beside the records of status.dnsRecords, once per address, and
// the message counts it apart from them.
func TestPTRWithTheRecords(t *testing.T) {
	s := dnstest.Start(t)
	publishAll(t, s, "reject")
	d := records(t, lbIP)
	d.MailHost = "mail." + domain
	status, reason, msg := check(t, s, d)
	if status != metav1.ConditionFalse || reason != dnscheck.ReasonRecordsMissing ||
		msg != "1 of 6 records (the 5 of status.dnsRecords and the PTR record of the mail server's address) are not published as they should be: "+
			"PTR 192.0.2.10: none published: set the reverse DNS of 192.0.2.10 to mail.example.com. at your cloud provider or IP owner." {
		t.Errorf("got %s/%s %q, want False/RecordsMissing naming only the PTR record", status, reason, msg)
	}

	s.AddPTR(lbIP, mailHost)
	status, reason, msg = check(t, s, d)
	if status != metav1.ConditionTrue || reason != dnscheck.ReasonPublished ||
		msg != "All 6 records (the 5 of status.dnsRecords and the PTR record of the mail server's address) are published." {
		t.Errorf("got %s/%s %q, want True/Published", status, reason, msg)
	}

	// A load balancer known by name alone has no address to look up.
	d = records(t, "")
	d.MailHost = "mail." + domain
	if r := (&dnscheck.Checker{Resolver: dnscheck.NewResolver(s.Addr)}).Check(context.Background(), d); len(r.Findings) != len(d.Records) {
		t.Errorf("%d findings for %d records and no address", len(r.Findings), len(d.Records))
	}
}
