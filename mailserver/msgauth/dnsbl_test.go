package msgauth_test

import (
	"context"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/msgauth"
)

func TestDNSBLName(t *testing.T) {
	for _, tc := range []struct{ ip, zone, want string }{
		{"192.0.2.99", "zen.example", "99.2.0.192.zen.example."},
		{"::ffff:192.0.2.99", "zen.example.", "99.2.0.192.zen.example."},
		// RFC 5782 2.4's example.
		{"2001:db8:1:2:3:4:567:89ab", "ugly.example.com", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com."},
	} {
		if got := msgauth.DNSBLName(netip.MustParseAddr(tc.ip), tc.zone); got != tc.want {
			t.Errorf("DNSBLName(%s, %s) = %q, want %q", tc.ip, tc.zone, got, tc.want)
		}
	}
}

func verifierFor(dns *dnstest.Server) *msgauth.Verifier {
	return &msgauth.Verifier{Hostname: "mx.b.test", Resolver: delivery.NewResolver(dns.Addr), Timeout: 5 * time.Second}
}

// What counts as a listing: any 127/8 answer by default, but never Spamhaus's error codes; only
// the return codes asked for when there are some; the TXT record is the reason; NXDOMAIN is
// not listed and SERVFAIL an error.
func TestLookupDNSBL(t *testing.T) {
	dns := dnstest.Start(t)
	dns.AddAddr("2.0.0.127.bl.test", "127.0.0.2")
	dns.AddTXT("2.0.0.127.bl.test", "Listed\x01 by bl.test: see https://bl.test/q?127.0.0.2")
	dns.AddAddr("3.0.0.127.bl.test", "127.255.255.254")
	dns.AddAddr("4.0.0.127.bl.test", "127.0.0.4")
	dns.AddAddr("4.0.0.127.bl.test", "127.0.0.10")
	dns.AddAddr("5.0.0.127.bl.test", "192.0.2.1") // a wildcard gone wrong: not an answer
	dns.AddAddr("b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test", "127.0.0.2")
	dns.SetServfail("2.0.0.127.down.test", true)
	v := verifierFor(dns)
	ctx := context.Background()
	for _, tc := range []struct {
		name, ip, zone, reason string
		codes                  []netip.Prefix
		listed, refused        bool
	}{
		{"listed", "127.0.0.2", "bl.test", "Listed? by bl.test: see https://bl.test/q?127.0.0.2", nil, true, false},
		{"IPv6 listed", "2001:db8:1:2:3:4:567:89ab", "bl.test", "", nil, true, false},
		{"not listed", "127.0.0.9", "bl.test", "", nil, false, false},
		{"error code", "127.0.0.3", "bl.test", "", nil, false, true},
		{"error code even when asked for", "127.0.0.3", "bl.test", "", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, false, true},
		{"outside 127/8", "127.0.0.5", "bl.test", "", nil, false, false},
		{"return code not asked for", "127.0.0.2", "bl.test", "", []netip.Prefix{netip.MustParsePrefix("127.0.0.4/30")}, false, false},
		{"one of two answers asked for", "127.0.0.4", "bl.test", "", []netip.Prefix{netip.MustParsePrefix("127.0.0.10/32")}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := v.LookupDNSBL(ctx, netip.MustParseAddr(tc.ip), tc.zone, tc.codes)
			if err != nil {
				t.Fatal(err)
			}
			if l.Listed != tc.listed || l.Refused != tc.refused || l.Reason != tc.reason {
				t.Errorf("got %+v, want listed %v refused %v reason %q", l, tc.listed, tc.refused, tc.reason)
			}
		})
	}
	if _, err := v.LookupDNSBL(ctx, netip.MustParseAddr("127.0.0.2"), "down.test", nil); err == nil {
		t.Error("a SERVFAIL gave no error")
	}
}

// iprev: pass when a PTR name maps back to the address (also among several names and for
// IPv6), fail without a PTR record or when no name maps back, temperror when DNS fails.
func TestIPRev(t *testing.T) {
	dns := dnstest.Start(t)
	dns.AddPTR("192.0.2.1", "mx.good.test")
	dns.AddAddr("mx.good.test", "192.0.2.1")
	dns.AddPTR("192.0.2.2", "liar.test")
	dns.AddAddr("liar.test", "192.0.2.200")
	dns.AddPTR("192.0.2.3", "gone.test") // no address at all
	dns.AddPTR("192.0.2.3", "second.test")
	dns.AddAddr("second.test", "192.0.2.3")
	dns.AddPTR("2001:db8::25", "mx6.good.test")
	dns.AddAddr("mx6.good.test", "2001:db8::25")
	dns.SetServfail("5.2.0.192.in-addr.arpa", true)
	dns.AddPTR("192.0.2.6", "broken.test")
	dns.SetServfail("broken.test", true)
	v := verifierFor(dns)
	for _, tc := range []struct {
		ip   string
		want authres.ResultValue
		name string
	}{
		{"192.0.2.1", authres.ResultPass, "mx.good.test"},
		{"192.0.2.2", authres.ResultFail, ""},
		{"192.0.2.3", authres.ResultPass, "second.test"},
		{"192.0.2.4", authres.ResultFail, ""},
		{"2001:db8::25", authres.ResultPass, "mx6.good.test"},
		{"192.0.2.5", authres.ResultTempError, ""},
		{"192.0.2.6", authres.ResultTempError, ""},
	} {
		c := v.StartIPRev(context.Background(), netip.MustParseAddr(tc.ip))
		res, err := v.Verify(context.Background(), v.StartSPF(context.Background(), netip.MustParseAddr(tc.ip), "helo.test", ""), c,
			strings.NewReader("From: x@nowhere.test\r\n\r\nx\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Result != tc.want || c.Name != tc.name {
			t.Errorf("iprev of %s = %s (%q, %s), want %s (%q)", tc.ip, c.Result, c.Name, c.Reason, tc.want, tc.name)
		}
		// An IPv6 address is a quoted-string: ':' is not a token character (RFC 2045 5.1).
		ipValue := tc.ip
		if strings.Contains(ipValue, ":") {
			ipValue = `"` + ipValue + `"`
		}
		want := regexp.MustCompile(`\tiprev=` + string(tc.want) + `( reason="[^"]+")? policy\.iprev=` + regexp.QuoteMeta(ipValue) + "\r\n")
		if hdr := string(res.Header); !want.MatchString(hdr) {
			t.Errorf("Authentication-Results of %s lacks %q:\n%s", tc.ip, want, hdr)
		}
	}
}

// Connections from one address within a minute share its iprev check; a temperror is not
// shared, so the next connection asks again.
func TestIPRevSharedAcrossConnections(t *testing.T) {
	dns := dnstest.Start(t)
	dns.AddPTR("192.0.2.1", "mx.good.test")
	dns.AddAddr("mx.good.test", "192.0.2.1")
	dns.SetServfail("5.2.0.192.in-addr.arpa", true)
	v := verifierFor(dns)
	check := func(ip string) *msgauth.IPRevCheck {
		c := v.StartIPRev(context.Background(), netip.MustParseAddr(ip))
		if _, err := v.Verify(context.Background(), v.StartSPF(context.Background(), netip.MustParseAddr(ip), "helo.test", ""), c,
			strings.NewReader("From: x@nowhere.test\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if a, b := check("192.0.2.1"), check("192.0.2.1"); a != b || a.Result != authres.ResultPass {
		t.Errorf("two connections from one address got checks %p (%s) and %p", a, a.Result, b)
	}
	if n := dns.Queries("PTR", "1.2.0.192.in-addr.arpa"); n != 1 {
		t.Errorf("PTR of 192.0.2.1 asked %d times, want 1", n)
	}
	if a, b := check("192.0.2.5"), check("192.0.2.5"); a == b || b.Result != authres.ResultTempError {
		t.Errorf("a temperror check was shared (%p, %p, %s)", a, b, b.Result)
	}
}
