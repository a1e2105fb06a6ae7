// Package dnstest is an authoritative DNS server for tests of the DNS check, on loopback UDP and
// TCP (github.com/miekg/dns): it answers what the test published, NXDOMAIN for names with
// nothing, an empty answer (NODATA) for a name that has other types, and SERVFAIL for names the
// test marks so.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is the test DNS server.
type Server struct {
	// Addr is "127.0.0.1:port", UDP and TCP.
	Addr string

	mu       sync.Mutex
	records  map[string][]dns.RR // by lower-case FQDN
	servfail map[string]bool
	queries  int
}

// Start serves until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{records: map[string][]dns.RR{}, servfail: map[string]bool{}}
	// UDP and TCP on the same port; the TCP port may be taken by some client's ephemeral port.
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
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	t.Cleanup(func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	})
	return s
}

// Publish adds records in zone file syntax, e.g. "example.com. MX 10 mail.example.com.";
// TXT values are best added with TXT, which splits long ones.
func (s *Server) Publish(t testing.TB, zoneLines ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range zoneLines {
		rr, err := dns.NewRR(line)
		if err != nil || rr == nil {
			t.Fatalf("dnstest: record %q: %v", line, err)
		}
		rr.Header().Ttl = 1
		name := strings.ToLower(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
}

// TXT is the zone file line of a TXT record with value, split into strings of at most 255
// octets as DNS requires (RFC 1035 3.3.14).
func TXT(name, value string) string {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, fmt.Sprintf("%q", value[:255]))
		value = value[255:]
	}
	parts = append(parts, fmt.Sprintf("%q", value))
	return name + " TXT " + strings.Join(parts, " ")
}

// Remove drops the records of a type ("MX", "TXT") at name; an empty type drops all of them.
func (s *Server) Remove(name, typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.ToLower(dns.Fqdn(name))
	kept := s.records[name][:0]
	for _, rr := range s.records[name] {
		if typ != "" && dns.TypeToString[rr.Header().Rrtype] != typ {
			kept = append(kept, rr)
		}
	}
	if len(kept) == 0 {
		delete(s.records, name)
		return
	}
	s.records[name] = kept
}

// SetServfail makes every query for name fail with SERVFAIL, or stop failing.
func (s *Server) SetServfail(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[strings.ToLower(dns.Fqdn(name))] = on
}

// Queries is how many queries arrived so far.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	s.mu.Lock()
	s.queries++
	for _, q := range req.Question {
		name := strings.ToLower(q.Name)
		if s.servfail[name] {
			m.Rcode = dns.RcodeServerFailure
			continue
		}
		rrs, ok := s.records[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		for _, rr := range rrs {
			t := rr.Header().Rrtype
			if t == q.Qtype || t == dns.TypeCNAME && q.Qtype != dns.TypeCNAME {
				a := dns.Copy(rr)
				a.Header().Name = q.Name
				m.Answer = append(m.Answer, a)
			}
		}
		// A CNAME's target in the same answer, as an authoritative server adds it (RFC 1034 4.3.2).
		for i := 0; i < len(m.Answer); i++ {
			if c, ok := m.Answer[i].(*dns.CNAME); ok && q.Qtype != dns.TypeCNAME {
				for _, rr := range s.records[strings.ToLower(c.Target)] {
					if t := rr.Header().Rrtype; t == q.Qtype || t == dns.TypeCNAME {
						m.Answer = append(m.Answer, dns.Copy(rr))
					}
				}
			}
		}
	}
	s.mu.Unlock()
	_ = w.WriteMsg(m)
}
