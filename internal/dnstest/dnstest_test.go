package dnstest_test

import (
	"net"
	"testing"

	"github.com/miekg/dns"

	"github.com/kubemail/kubemail/internal/dnstest"
)

func ask(t *testing.T, s *dnstest.Server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	for _, network := range []string{"udp", "tcp"} {
		r, _, err := (&dns.Client{Net: network}).Exchange(q, s.Addr)
		if err != nil {
			t.Fatalf("%s %s over %s: %v", dns.TypeToString[qtype], name, network, err)
		}
		if network == "tcp" {
			return r
		}
	}
	return nil
}

func TestAnswers(t *testing.T) {
	s := dnstest.Start(t)
	s.SetMX("B.test", &net.MX{Host: "mx.b.test", Pref: 10})
	s.SetA("mx.b.test", "127.0.0.2", "2001:db8::2")
	long := string(make([]byte, 300))
	s.SetTXT("b.test", "v=spf1 -all", long)
	s.AddPTR("192.0.2.1", "mx.b.test")
	s.SetCNAME("www.b.test", "mx.b.test")
	s.Publish(t, `c.test. TXT "v=spf1 " "-all"`)

	if r := ask(t, s, "b.test.", dns.TypeMX); len(r.Answer) != 1 || r.Answer[0].(*dns.MX).Mx != "mx.b.test." {
		t.Errorf("MX: %v", r)
	}
	if r := ask(t, s, "b.test.", dns.TypeTXT); len(r.Answer) != 2 || len(r.Answer[1].(*dns.TXT).Txt) != 2 {
		t.Errorf("TXT: %v", r)
	}
	if r := ask(t, s, "c.test.", dns.TypeTXT); len(r.Answer) != 1 || len(r.Answer[0].(*dns.TXT).Txt) != 2 {
		t.Errorf("TXT of two strings: %v", r)
	}
	if r := ask(t, s, "mx.b.test.", dns.TypeAAAA); len(r.Answer) != 1 {
		t.Errorf("AAAA: %v", r)
	}
	if r := ask(t, s, "1.2.0.192.in-addr.arpa.", dns.TypePTR); len(r.Answer) != 1 {
		t.Errorf("PTR: %v", r)
	}
	if r := ask(t, s, "www.b.test.", dns.TypeA); len(r.Answer) != 2 {
		t.Errorf("A behind a CNAME: %v", r)
	}
	if s.Queries("MX", "b.test") != 2 || s.Queries("", "b.test") != 4 || s.Queries("", "") != 12 {
		t.Errorf("queries: MX b.test %d, b.test %d, all %d", s.Queries("MX", "b.test"), s.Queries("", "b.test"), s.Queries("", ""))
	}
}

func TestNegative(t *testing.T) {
	s := dnstest.Start(t)
	s.SetMX("b.test")
	s.SetTXT("t.test", "x")
	s.SetServfail("down.test", true)

	for _, c := range []struct {
		name  string
		rcode int
		soa   bool
	}{
		{"b.test.", dns.RcodeSuccess, true},      // NODATA
		{"none.test.", dns.RcodeNameError, true}, // NXDOMAIN
		{"down.test.", dns.RcodeServerFailure, false},
	} {
		r := ask(t, s, c.name, dns.TypeMX)
		if r.Rcode != c.rcode || len(r.Answer) != 0 {
			t.Errorf("%s: %v, want rcode %s", c.name, r, dns.RcodeToString[c.rcode])
		}
		if _, ok := firstNS(r).(*dns.SOA); ok != c.soa {
			t.Errorf("%s: authority %v, want an SOA: %v", c.name, r.Ns, c.soa)
		}
		if soa, ok := firstNS(r).(*dns.SOA); ok && (soa.Minttl != dnstest.TTL || soa.Hdr.Name != "test.") {
			t.Errorf("%s: SOA %v", c.name, soa)
		}
	}
	s.Remove("t.test", "TXT")
	if r := ask(t, s, "t.test.", dns.TypeTXT); r.Rcode != dns.RcodeNameError {
		t.Errorf("after Remove: %v, want NXDOMAIN", r)
	}
}

func firstNS(r *dns.Msg) dns.RR {
	if len(r.Ns) == 0 {
		return nil
	}
	return r.Ns[0]
}
