package dnscheck_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/controllers/dnscheck"
	"github.com/kubemail/kubemail/internal/dnstest"
)

const (
	domain   = "example.com"
	mailHost = "mail.example.com."
	lbIP     = "192.0.2.10"
)

var (
	keysOnce        sync.Once
	ourKey, someKey string // DKIM TXT values
)

// dkimValues makes two DKIM records: this domain's and some other key's.
func dkimValues(t *testing.T) (string, string) {
	t.Helper()
	keysOnce.Do(func() {
		for _, v := range []*string{&ourKey, &someKey} {
			key, err := rsa.GenerateKey(rand.Reader, builder.DKIMKeyBits)
			if err != nil {
				t.Fatal(err)
			}
			pem, err := builder.EncodeDKIMKey(key)
			if err != nil {
				t.Fatal(err)
			}
			if *v, err = builder.DKIMRecordValue(pem); err != nil {
				t.Fatal(err)
			}
		}
	})
	return ourKey, someKey
}

// records are the records the operator asks example.com to publish, with a load balancer at
// lbIP (so an A record, and SPF evaluated for lbIP) unless ip is "".
func records(t *testing.T, ip string) dnscheck.Domain {
	our, _ := dkimValues(t)
	md := &v1alpha1.MailDomain{Spec: v1alpha1.MailDomainSpec{Domain: domain}}
	d := dnscheck.Domain{Name: domain}
	var external []string
	if ip != "" {
		external = []string{ip}
		d.Addresses = []netip.Addr{netip.MustParseAddr(ip)}
	}
	d.Records = builder.DNSRecords(md, our, external)
	return d
}

// publishAll publishes every record as the operator asks, as a zone would have them.
func publishAll(t *testing.T, s *dnstest.Server, dmarcPolicy string) {
	our, _ := dkimValues(t)
	s.Publish(t,
		"example.com. MX 10 mail.example.com.",
		"mail.example.com. A "+lbIP,
		dnstest.TXT("example.com.", "v=spf1 mx ~all"),
		dnstest.TXT("kubemail._domainkey.example.com.", our),
		dnstest.TXT("_dmarc.example.com.", "v=DMARC1; p="+dmarcPolicy+"; rua=mailto:postmaster@example.com"),
	)
}

func check(t *testing.T, s *dnstest.Server, d dnscheck.Domain) (metav1.ConditionStatus, string, string) {
	t.Helper()
	c := &dnscheck.Checker{Resolver: dnscheck.NewResolver(s.Addr), LookupTimeout: 5 * time.Second}
	status, reason, msg := c.Check(context.Background(), d).Condition()
	t.Logf("%s/%s: %s", status, reason, msg)
	return status, reason, msg
}

func TestAllPublished(t *testing.T) {
	s := dnstest.Start(t)
	publishAll(t, s, "quarantine")
	status, reason, msg := check(t, s, records(t, lbIP))
	if status != metav1.ConditionTrue || reason != dnscheck.ReasonPublished || strings.Contains(msg, "Note") {
		t.Errorf("got %s/%s %q, want True/Published without a note", status, reason, msg)
	}
}

func TestDMARCPolicyNoneIsPublishedWithANote(t *testing.T) {
	s := dnstest.Start(t)
	publishAll(t, s, "none")
	status, reason, msg := check(t, s, records(t, lbIP))
	if status != metav1.ConditionTrue || reason != dnscheck.ReasonPublished || !strings.Contains(msg, "TXT _dmarc.example.com.: the policy is p=none") {
		t.Errorf("got %s/%s %q, want True/Published noting p=none", status, reason, msg)
	}
}

func TestNothingPublished(t *testing.T) {
	s := dnstest.Start(t)
	status, reason, msg := check(t, s, records(t, lbIP))
	if status != metav1.ConditionFalse || reason != dnscheck.ReasonRecordsMissing {
		t.Errorf("got %s/%s, want False/RecordsMissing", status, reason)
	}
	for _, want := range []string{
		"5 of 5 records",
		"MX example.com.: none published",
		"A mail.example.com.: none published",
		"TXT example.com.: none published",
		"TXT kubemail._domainkey.example.com.: none published",
		"TXT _dmarc.example.com.: none published",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
}

// TestRecords changes one record of a complete zone at a time.
func TestRecords(t *testing.T) {
	our, other := dkimValues(t)
	ourP := our[strings.Index(our, "p=")+2:]
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, s *dnstest.Server)
		ip     string // the load balancer's address; lbIP when empty, "-" for none
		reason string // "" for Published
		says   string
		named  int // records the message names, when not 1
	}{{
		name: "MX among others, upper case, other preference",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("example.com.", "MX")
			s.Publish(t, "example.com. MX 5 mx1.provider.net.", "example.com. MX 20 MAIL.Example.COM.")
		},
	}, {
		name:   "MX missing",
		change: func(t *testing.T, s *dnstest.Server) { s.Remove("example.com.", "MX") },
		reason: dnscheck.ReasonRecordsMissing, says: "MX example.com.: none published",
		named: 2, // and SPF's "mx" no longer passes the server
	}, {
		name: "MX elsewhere",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("example.com.", "MX")
			s.Publish(t, "example.com. MX 10 mx2.provider.net.", "example.com. MX 10 mx1.provider.net.")
		},
		reason: dnscheck.ReasonRecordsMismatch, says: "MX example.com.: found MX mx1.provider.net., mx2.provider.net., not mail.example.com.",
		named: 2,
	}, {
		name: "null MX",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("example.com.", "MX")
			s.Publish(t, "example.com. MX 0 .")
		},
		reason: dnscheck.ReasonRecordsMismatch, says: "MX example.com.: found a null MX",
		named: 2,
	}, {
		name: "A among others",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Publish(t, "mail.example.com. A 198.51.100.7", "mail.example.com. AAAA 2001:db8::7")
		},
	}, {
		name: "A elsewhere",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("mail.example.com.", "A")
			s.Publish(t, "mail.example.com. A 198.51.100.7", "mail.example.com. AAAA 2001:db8::7")
		},
		reason: dnscheck.ReasonRecordsMismatch, says: "A mail.example.com.: found 198.51.100.7, not 192.0.2.10",
		named: 2, // and SPF's "mx" gives softfail for the server's address
	}, {
		name: "AAAA",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("mail.example.com.", "A")
			s.Remove("example.com.", "TXT")
			s.Publish(t, "mail.example.com. AAAA 2001:db8::25", dnstest.TXT("example.com.", "v=spf1 ip6:2001:db8::/64 -all"))
		},
		ip: "2001:db8::25",
	}, {
		name: "SPF twice",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Publish(t, dnstest.TXT("example.com.", "v=spf1 include:_spf.provider.net ~all"))
		},
		reason: dnscheck.ReasonRecordsMismatch, says: "TXT example.com.: found 2 v=spf1 records",
	}, {
		name: "SPF not passing the server's address",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("example.com.", "TXT")
			s.Publish(t, dnstest.TXT("example.com.", "v=spf1 ip4:198.51.100.0/24 -all"), dnstest.TXT("example.com.", "google-site-verification=abc"))
		},
		reason: dnscheck.ReasonRecordsMismatch, says: `TXT example.com.: found "v=spf1 ip4:198.51.100.0/24 -all", which gives fail for the mail server's address 192.0.2.10, not pass`,
	}, {
		name: "SPF of another form that passes",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("example.com.", "TXT")
			s.Publish(t, dnstest.TXT("example.com.", "v=spf1 ip4:192.0.2.0/24 include:_spf.provider.net -all"),
				dnstest.TXT("_spf.provider.net.", "v=spf1 -all"))
		},
	}, {
		name: "SPF without a known address: only counted",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("example.com.", "TXT")
			s.Remove("mail.example.com.", "A")
			s.Publish(t, dnstest.TXT("example.com.", "v=spf1 -all"))
		},
		ip: "-",
	}, {
		name: "SPF missing among other TXT",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("example.com.", "TXT")
			s.Publish(t, dnstest.TXT("example.com.", "google-site-verification=abc"))
		},
		reason: dnscheck.ReasonRecordsMissing, says: "TXT example.com.: no v=spf1 record published",
	}, {
		name: "DKIM with spaces in the key",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("kubemail._domainkey.example.com.", "TXT")
			spaced := "v=DKIM1;k=rsa;  p=" + ourP[:100] + " " + ourP[100:200] + "  " + ourP[200:]
			s.Publish(t, dnstest.TXT("kubemail._domainkey.example.com.", spaced))
		},
	}, {
		name: "DKIM truncated",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("kubemail._domainkey.example.com.", "TXT")
			s.Publish(t, dnstest.TXT("kubemail._domainkey.example.com.", our[:255]))
		},
		reason: dnscheck.ReasonRecordsMismatch, says: "TXT kubemail._domainkey.example.com.: found a truncated DKIM key (p=MIIBIjAN…",
	}, {
		name: "DKIM of an older key",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("kubemail._domainkey.example.com.", "TXT")
			s.Publish(t, dnstest.TXT("kubemail._domainkey.example.com.", other))
		},
		reason: dnscheck.ReasonRecordsMismatch,
		says:   "TXT kubemail._domainkey.example.com.: found a DKIM key that is not this domain's (p=MIIBIjAN…" + other[len(other)-12:] + ")",
	}, {
		name: "DKIM twice",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Publish(t, dnstest.TXT("kubemail._domainkey.example.com.", other))
		},
		reason: dnscheck.ReasonRecordsMismatch, says: "found 2 DKIM key records",
	}, {
		name: "DMARC twice",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Publish(t, dnstest.TXT("_dmarc.example.com.", "v=DMARC1; p=reject"))
		},
		reason: dnscheck.ReasonRecordsMismatch, says: "TXT _dmarc.example.com.: found 2 v=DMARC1 records",
	}, {
		name: "DMARC without a policy",
		change: func(t *testing.T, s *dnstest.Server) {
			s.Remove("_dmarc.example.com.", "")
			s.Publish(t, dnstest.TXT("_dmarc.example.com.", "v=DMARC1; rua=mailto:x@example.com"))
		},
		reason: dnscheck.ReasonRecordsMismatch, says: "without a valid policy",
	}, {
		name:   "DMARC missing",
		change: func(t *testing.T, s *dnstest.Server) { s.Remove("_dmarc.example.com.", "") },
		reason: dnscheck.ReasonRecordsMissing, says: "TXT _dmarc.example.com.: none published",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := dnstest.Start(t)
			publishAll(t, s, "reject")
			tc.change(t, s)
			ip := tc.ip
			switch ip {
			case "":
				ip = lbIP
			case "-":
				ip = ""
			}
			d := records(t, ip)
			status, reason, msg := check(t, s, d)
			if tc.reason == "" {
				if status != metav1.ConditionTrue || reason != dnscheck.ReasonPublished {
					t.Errorf("got %s/%s %q, want True/Published", status, reason, msg)
				}
				return
			}
			if status != metav1.ConditionFalse || reason != tc.reason || !strings.Contains(msg, tc.says) {
				t.Errorf("got %s/%s %q, want False/%s saying %q", status, reason, msg, tc.reason, tc.says)
			}
			named := 0
			for _, r := range d.Records {
				if strings.Contains(msg, r.Type+" "+r.Name+": ") {
					named++
				}
			}
			if want := max(tc.named, 1); named != want {
				t.Errorf("message %q names %d records, want %d", msg, named, want)
			}
			// The same answers make the same message: no write when nothing changed.
			for range 3 {
				if _, _, again := check(t, s, d); again != msg {
					t.Fatalf("the same zone gave two messages:\n%q\n%q", msg, again)
				}
			}
		})
	}
}

func TestLookupFailures(t *testing.T) {
	t.Run("SERVFAIL is a failed lookup, NXDOMAIN a missing record", func(t *testing.T) {
		s := dnstest.Start(t)
		publishAll(t, s, "reject")
		s.Remove("_dmarc.example.com.", "") // NXDOMAIN
		for _, name := range []string{"example.com.", "mail.example.com.", "kubemail._domainkey.example.com."} {
			s.SetServfail(name, true)
		}
		status, reason, msg := check(t, s, records(t, lbIP))
		if status != metav1.ConditionFalse || reason != dnscheck.ReasonRecordsMissing ||
			!strings.Contains(msg, "1 of 5 records of status.dnsRecords are not published as they should be: TXT _dmarc.example.com.: none published.") ||
			!strings.Contains(msg, "4 more could not be looked up: MX example.com.: lookup failed: server misbehaving;") {
			t.Errorf("got %s/%s %q: want False/RecordsMissing naming the missing DMARC record and the failed lookups", status, reason, msg)
		}
		s.Publish(t, dnstest.TXT("_dmarc.example.com.", "v=DMARC1; p=reject"))
		status, reason, msg = check(t, s, records(t, lbIP))
		if status != metav1.ConditionUnknown || reason != dnscheck.ReasonLookupFailed ||
			!strings.Contains(msg, "4 of 5 records of status.dnsRecords could not be looked up") ||
			!strings.Contains(msg, "TXT kubemail._domainkey.example.com.: lookup failed: server misbehaving") {
			t.Errorf("got %s/%s %q: want Unknown/LookupFailed naming the failed lookups", status, reason, msg)
		}
	})

	t.Run("a name server that never answers", func(t *testing.T) {
		// A UDP socket that reads queries and answers none; nothing listens on its TCP port.
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			buf := make([]byte, 512)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		c := &dnscheck.Checker{Resolver: dnscheck.NewResolver(pc.LocalAddr().String()), LookupTimeout: 300 * time.Millisecond}
		start := time.Now()
		status, reason, msg := c.Check(context.Background(), records(t, lbIP)).Condition()
		took := time.Since(start)
		t.Logf("%s/%s after %v: %s", status, reason, took, msg)
		if status != metav1.ConditionUnknown || reason != dnscheck.ReasonLookupFailed || !strings.Contains(msg, "MX example.com.: lookup failed: no answer in time") {
			t.Errorf("got %s/%s %q, want Unknown/LookupFailed: no answer in time", status, reason, msg)
		}
		// Each lookup gives up after its timeout and the records are checked side by side:
		// far less than five records one after another with the system's 5 s timeouts.
		if took > 10*time.Second {
			t.Errorf("the check took %v with a 300ms timeout per lookup", took)
		}
	})
}
