// Package dnstest is an authoritative DNS server for tests of the inbound checks (DNSBL, iprev,
// SPF, DMARC): github.com/miekg/dns on a loopback UDP and TCP port, answering the A, AAAA, PTR
// and TXT records it is given, NXDOMAIN for other names, SERVFAIL for names told to fail.
// Answers carry a TTL of 60 s and negative answers an SOA with a 60 s minimum, so the server's
// DNS cache keeps them as it would real ones.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is the test DNS server.
type Server struct {
	Addr string // "127.0.0.1:port", UDP and TCP

	mu       sync.Mutex
	records  map[string][]dns.RR // by lower-case absolute name
	servfail map[string]bool
	queries  map[string]int // "A name." -> count
}

// Start serves until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{records: map[string][]dns.RR{}, servfail: map[string]bool{}, queries: map[string]int{}}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		s.Addr = pc.LocalAddr().String()
		if ln, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: ln, Handler: s}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return s
}

func (s *Server) add(rr dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := strings.ToLower(rr.Header().Name)
	s.records[name] = append(s.records[name], rr)
}

func hdr(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: rrtype, Class: dns.ClassINET, Ttl: 60}
}

// AddAddr adds an A or AAAA record for name.
func (s *Server) AddAddr(name, ip string) {
	a := netip.MustParseAddr(ip)
	if a.Is4() {
		s.add(&dns.A{Hdr: hdr(name, dns.TypeA), A: a.AsSlice()})
		return
	}
	s.add(&dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: a.AsSlice()})
}

// AddPTR adds a PTR record for the address ip pointing at name.
func (s *Server) AddPTR(ip, name string) {
	rev, err := dns.ReverseAddr(ip)
	if err != nil {
		panic(err)
	}
	s.add(&dns.PTR{Hdr: hdr(rev, dns.TypePTR), Ptr: dns.Fqdn(name)})
}

// AddTXT adds a TXT record of one string.
func (s *Server) AddTXT(name, text string) {
	s.add(&dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: []string{text}})
}

// SetServfail makes every query for name fail with SERVFAIL (or stop failing).
func (s *Server) SetServfail(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[strings.ToLower(dns.Fqdn(name))] = on
}

// Queries is how many queries of type qtype ("A", "PTR") for name arrived.
func (s *Server) Queries(qtype, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[qtype+" "+strings.ToLower(dns.Fqdn(name))]
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	s.mu.Lock()
	for _, q := range req.Question {
		name := strings.ToLower(q.Name)
		s.queries[dns.TypeToString[q.Qtype]+" "+name]++
		if s.servfail[name] {
			m.Rcode = dns.RcodeServerFailure
			continue
		}
		rrs, ok := s.records[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				c := dns.Copy(rr)
				c.Header().Name = q.Name
				m.Answer = append(m.Answer, c)
			}
		}
		if len(m.Answer) == 0 {
			// RFC 2308: a negative answer is cached for the SOA's minimum.
			m.Ns = append(m.Ns, &dns.SOA{Hdr: hdr("test.", dns.TypeSOA), Ns: "ns.test.", Mbox: "hostmaster.test.",
				Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60})
		}
	}
	s.mu.Unlock()
	w.WriteMsg(m)
}
