// Package dnstest is an authoritative DNS server for tests, one for every package of the module
// (the mail server's inbound checks and outbound delivery, the operator's DNS check, the relay
// tests and the outbound benchmark): github.com/miekg/dns on a loopback UDP and TCP port (TCP
// for the retry after a truncated answer), stopped when the test ends (Start), or on a given
// address until Close (Listen).
//
// It answers for every name:
//
//   - the records it was given (Publish in zone file syntax, or the setters SetMX, SetA,
//     AddAddr, SetTXT, AddTXT, AddPTR, SetCNAME), each with a TTL of 60 s; a CNAME answers every
//     other type, followed by its target's records of that type (RFC 1034 4.3.2);
//   - NXDOMAIN for a name without records, NODATA (NOERROR, no answer) for a name with records
//     of other types only, both with an SOA of TTL and MINIMUM 60 s in the authority section,
//     as a real server's negative answer carries (RFC 2308 3), so a caching resolver (the mail
//     server's package dnscache) keeps it as it would a real one;
//   - SERVFAIL, without an SOA, for the names told to fail (SetServfail).
//
// A setter given no values leaves the name existing without records of that type (NODATA);
// Remove takes records away and makes a name left without any NXDOMAIN again. Names are
// compared without case. Queries counts what arrived, by type and name. A Server is safe for
// concurrent use: the test changes records while the code under test looks them up.
package dnstest

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TTL is the TTL of every record and of the SOA of negative answers, in seconds.
const TTL = 60

// Server is the test DNS server.
type Server struct {
	// Addr is "127.0.0.1:port", UDP and TCP.
	Addr string

	mu       sync.Mutex
	records  map[string][]dns.RR // by lower-case FQDN; a key with no records is NODATA
	servfail map[string]bool
	queries  map[string]int // "A name." -> count
	udp, tcp *dns.Server
	fixed    bool // made by Listen on a given address, which Close must leave free
}

// Start serves until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	// UDP and TCP on the same port; the TCP port may be taken by some client's ephemeral port.
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			s, err := serve(pc, ln)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			return s
		}
		_ = pc.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
}

// Listen serves on addr (e.g. "127.0.1.53:53"; a port, not 0, since UDP and TCP share it) over
// UDP and TCP until Close, for what is not a test (test/relay's harness, shared with
// bench/outbound); it returns once both serve.
func Listen(addr string) (*Server, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dnstest: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("dnstest: %w", err)
	}
	s, err := serve(pc, ln)
	if err == nil {
		s.fixed = true
	}
	return s, err
}

// serve answers on pc and ln, and returns once both serve.
func serve(pc net.PacketConn, ln net.Listener) (*Server, error) {
	s := &Server{Addr: pc.LocalAddr().String(), records: map[string][]dns.RR{}, servfail: map[string]bool{}, queries: map[string]int{}}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: s, NotifyStartedFunc: notify}
	go func() { _ = s.udp.ActivateAndServe() }()
	go func() { _ = s.tcp.ActivateAndServe() }()
	for range 2 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			s.Close()
			return nil, fmt.Errorf("dnstest: the DNS server on %s did not start", s.Addr)
		}
	}
	return s, nil
}

// Close stops the server. For a server made by Listen it returns once the address can be bound
// again: Go closes a socket's descriptor only when the last goroutine using it (here the serve
// loop, woken by a read deadline) lets go of it, which on a loaded machine can be milliseconds
// after Close of the net.PacketConn returned, and the next test's Listen on the same address
// would fail with EADDRINUSE.
func (s *Server) Close() {
	_ = s.udp.Shutdown()
	_ = s.tcp.Shutdown()
	if !s.fixed {
		return
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		pc, err := net.ListenPacket("udp", s.Addr)
		if err != nil {
			continue
		}
		ln, err := net.Listen("tcp", s.Addr)
		_ = pc.Close() // no other goroutine holds these: closed at once
		if err == nil {
			_ = ln.Close()
			return
		}
	}
}

func key(name string) string { return strings.ToLower(dns.Fqdn(name)) }

func hdr(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: rrtype, Class: dns.ClassINET, Ttl: TTL}
}

// add appends rrs to name; s.mu is held.
func (s *Server) add(name string, rrs ...dns.RR) {
	k := key(name)
	s.records[k] = append(s.records[k], rrs...)
}

// set replaces the records of the types at name by rrs, keeping the name; s.mu is held.
func (s *Server) set(name string, rrs []dns.RR, types ...uint16) {
	k := key(name)
	kept := []dns.RR{}
	for _, rr := range s.records[k] {
		drop := false
		for _, t := range types {
			drop = drop || rr.Header().Rrtype == t
		}
		if !drop {
			kept = append(kept, rr)
		}
	}
	s.records[k] = append(kept, rrs...)
}

// Publish adds records in zone file syntax, e.g. "example.com. MX 10 mail.example.com." or
// `example.com. TXT "v=spf1 " "mx -all"` (a TXT record of two strings); the TTL is always TTL.
func (s *Server) Publish(t testing.TB, zoneLines ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range zoneLines {
		rr, err := dns.NewRR(line)
		if err != nil || rr == nil {
			t.Fatalf("dnstest: record %q: %v", line, err)
		}
		rr.Header().Ttl = TTL
		s.add(rr.Header().Name, rr)
	}
}

// TXT is the zone file line of a TXT record with value, split into strings of at most 255
// octets as DNS requires (RFC 1035 3.3.14).
func TXT(name, value string) string {
	var parts []string
	for _, p := range split(value) {
		parts = append(parts, fmt.Sprintf("%q", p))
	}
	return name + " TXT " + strings.Join(parts, " ")
}

// split cuts value into character-strings of at most 255 octets (RFC 1035 3.3.14; RFC 6376
// 3.6.2.2 for long DKIM keys).
func split(value string) []string {
	var strs []string
	for len(value) > 255 {
		strs, value = append(strs, value[:255]), value[255:]
	}
	return append(strs, value)
}

// SetMX replaces the MX records of domain; host "." with preference 0 alone is a null MX
// (RFC 7505), no records leaves domain without MX (NODATA).
func (s *Server) SetMX(domain string, mxs ...*net.MX) {
	var rrs []dns.RR
	for _, mx := range mxs {
		rrs = append(rrs, &dns.MX{Hdr: hdr(domain, dns.TypeMX), Preference: mx.Pref, Mx: dns.Fqdn(mx.Host)})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set(domain, rrs, dns.TypeMX)
}

func addrRR(name, ip string) dns.RR {
	a := netip.MustParseAddr(ip)
	if a.Is4() {
		return &dns.A{Hdr: hdr(name, dns.TypeA), A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: a.AsSlice()}
}

// SetA replaces the A and AAAA records of host by addrs (IPv4 for A, IPv6 for AAAA).
func (s *Server) SetA(host string, addrs ...string) {
	var rrs []dns.RR
	for _, ip := range addrs {
		rrs = append(rrs, addrRR(host, ip))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set(host, rrs, dns.TypeA, dns.TypeAAAA)
}

// AddAddr adds A or AAAA records for name, one per address.
func (s *Server) AddAddr(name string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ip := range addrs {
		s.add(name, addrRR(name, ip))
	}
}

func txtRRs(name string, values []string) []dns.RR {
	var rrs []dns.RR
	for _, v := range values {
		rrs = append(rrs, &dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: split(v)})
	}
	return rrs
}

// SetTXT replaces the TXT records of name, one per value (SPF, DKIM, DMARC, MTA-STS records);
// a value over 255 octets is served as several strings of one record. Publish with a zone line
// gives a record of several strings cut elsewhere.
func (s *Server) SetTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set(name, txtRRs(name, values), dns.TypeTXT)
}

// AddTXT adds TXT records to name, one per value, as SetTXT.
func (s *Server) AddTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(name, txtRRs(name, values)...)
}

// AddPTR adds a PTR record for the address ip (its in-addr.arpa or ip6.arpa name) pointing at
// name.
func (s *Server) AddPTR(ip, name string) {
	rev, err := dns.ReverseAddr(ip)
	if err != nil {
		panic(fmt.Sprintf("dnstest: PTR for %q: %v", ip, err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(rev, &dns.PTR{Hdr: hdr(rev, dns.TypePTR), Ptr: dns.Fqdn(name)})
}

// SetCNAME makes name an alias of target, in place of every record name had.
func (s *Server) SetCNAME(name, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[key(name)] = []dns.RR{&dns.CNAME{Hdr: hdr(name, dns.TypeCNAME), Target: dns.Fqdn(target)}}
}

// Remove drops the records of a type ("MX", "TXT") at name, an empty type all of them; a name
// left without records is NXDOMAIN.
func (s *Server) Remove(name, typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(name)
	var kept []dns.RR
	for _, rr := range s.records[k] {
		if typ != "" && dns.TypeToString[rr.Header().Rrtype] != typ {
			kept = append(kept, rr)
		}
	}
	if len(kept) == 0 {
		delete(s.records, k)
		return
	}
	s.records[k] = kept
}

// SetServfail makes every query for name fail with SERVFAIL, or stop failing.
func (s *Server) SetServfail(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[key(name)] = on
}

// Queries is how many queries of type qtype ("A", "PTR") for name arrived so far; an empty
// qtype or name counts every type or name, so Queries("", "") is all queries.
func (s *Server) Queries(qtype, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.queries {
		t, qn, _ := strings.Cut(k, " ")
		if (qtype == "" || t == qtype) && (name == "" || qn == key(name)) {
			n += c
		}
	}
	return n
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
			if t := rr.Header().Rrtype; t == q.Qtype || t == dns.TypeCNAME && q.Qtype != dns.TypeCNAME {
				a := dns.Copy(rr)
				a.Header().Name = q.Name
				m.Answer = append(m.Answer, a)
			}
		}
		// A CNAME's target in the same answer, as an authoritative server adds it (RFC 1034
		// 4.3.2); a chain of at most 8, against loops.
		for i := 0; i < len(m.Answer) && i < 8; i++ {
			if c, ok := m.Answer[i].(*dns.CNAME); ok && q.Qtype != dns.TypeCNAME {
				for _, rr := range s.records[strings.ToLower(c.Target)] {
					if t := rr.Header().Rrtype; t == q.Qtype || t == dns.TypeCNAME {
						m.Answer = append(m.Answer, dns.Copy(rr))
					}
				}
			}
		}
		if len(m.Answer) == 0 {
			m.Ns = append(m.Ns, soa(name))
		}
	}
	s.mu.Unlock()
	_ = w.WriteMsg(m)
}

// soa is the SOA of a negative answer for name: of its top-level domain ("test.", "arpa."),
// with TTL and MINIMUM of TTL seconds, which a cache keeps the answer for (RFC 2308 5).
func soa(name string) dns.RR {
	labels := dns.SplitDomainName(name)
	zone := "."
	if len(labels) > 0 {
		zone = labels[len(labels)-1] + "."
	}
	return &dns.SOA{Hdr: hdr(zone, dns.TypeSOA), Ns: "ns." + strings.TrimPrefix(zone, "."), Mbox: "hostmaster." + strings.TrimPrefix(zone, "."),
		Serial: 1, Refresh: TTL, Retry: TTL, Expire: TTL, Minttl: TTL}
}
