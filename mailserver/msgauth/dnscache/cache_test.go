package dnscache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// server is a real DNS server on loopback (UDP and TCP on one port) whose answers each test
// writes, counting the queries that reach it.
type server struct {
	addr string

	mu      sync.Mutex
	answer  func(req *dns.Msg, tcp bool) *dns.Msg
	queries map[string]int // "udp TXT a.test." -> count
}

func startServer(t *testing.T, answer func(req *dns.Msg, tcp bool) *dns.Msg) *server {
	t.Helper()
	s := &server{answer: answer, queries: map[string]int{}}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	s.addr = pc.LocalAddr().String()
	handler := func(tcp bool) dns.HandlerFunc {
		return func(w dns.ResponseWriter, req *dns.Msg) {
			q := req.Question[0]
			s.mu.Lock()
			s.queries[fmt.Sprintf("%s %s %s", map[bool]string{false: "udp", true: "tcp"}[tcp], dns.TypeToString[q.Qtype], strings.ToLower(q.Name))]++
			answer := s.answer
			s.mu.Unlock()
			if m := answer(req, tcp); m != nil {
				w.WriteMsg(m)
			}
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: handler(false)}
	tcp := &dns.Server{Listener: ln, Handler: handler(true)}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return s
}

func (s *server) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[key]
}

func (s *server) setAnswer(f func(req *dns.Msg, tcp bool) *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = f
}

// clock is a settable time for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newCache(opts Options) (*Cache, *clock) {
	clk := &clock{now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	opts.Now = clk.Now
	return New(opts), clk
}

func txt(req *dns.Msg, ttl uint32, values ...string) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	for _, v := range values {
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: []string{v}})
	}
	return m
}

func soa(zone string, ttl, minimum uint32) *dns.SOA {
	return &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns: "ns." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: minimum}
}

func negative(req *dns.Msg, rcode int, authority ...dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true // a recursive resolver's answer (else Go calls NODATA a lame referral)
	m.Ns = authority
	return m
}

func lookupTXT(t *testing.T, r *net.Resolver, name string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.LookupTXT(ctx, name)
}

func TestPositiveAnswerKeptForItsTTL(t *testing.T) {
	s := startServer(t, func(req *dns.Msg, _ bool) *dns.Msg { return txt(req, 60, "v=spf1 -all") })
	c, clk := newCache(Options{})
	r := c.Resolver(s.addr)
	for _, step := range []struct {
		advance time.Duration
		queries int
	}{{0, 1}, {0, 1}, {59 * time.Second, 1}, {time.Second, 2}, {30 * time.Second, 2}} {
		clk.advance(step.advance)
		got, err := lookupTXT(t, r, "a.test.")
		if err != nil || len(got) != 1 || got[0] != "v=spf1 -all" {
			t.Fatalf("LookupTXT = %q, %v", got, err)
		}
		if n := s.count("udp TXT a.test."); n != step.queries {
			t.Fatalf("after %v more: %d queries reached the server, want %d", step.advance, n, step.queries)
		}
	}
}

func TestServedTTLCountsDown(t *testing.T) {
	s := startServer(t, func(req *dns.Msg, _ bool) *dns.Msg { return txt(req, 300, "x") })
	c, clk := newCache(Options{})
	ask := func(id uint16, name string) *dns.Msg {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeTXT)
		q.Id = id
		wire, _ := q.Pack()
		resp, err := c.exchange(context.Background(), "udp", s.addr, wire)
		if err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(resp[2:]); err != nil {
			t.Fatal(err)
		}
		return m
	}
	ask(1, "b.test.")
	clk.advance(100*time.Second + 500*time.Millisecond)
	m := ask(4242, "B.Test.")
	if m.Id != 4242 || m.Question[0].Name != "B.Test." {
		t.Errorf("cached answer has ID %d and question %q, want the query's 4242 and B.Test.", m.Id, m.Question[0].Name)
	}
	if ttl := m.Answer[0].Header().Ttl; ttl != 200 {
		t.Errorf("TTL after 100.5 s = %d, want 200", ttl)
	}
	if n := s.count("udp TXT b.test."); n != 1 {
		t.Errorf("%d queries reached the server, want 1 (names compare without case)", n)
	}
}

func TestNegativeAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(req *dns.Msg, _ bool) *dns.Msg
		keep   time.Duration // 0: not kept
	}{
		// RFC 2308 5: the smaller of the SOA's TTL and its MINIMUM.
		{"NXDOMAIN with SOA MINIMUM below its TTL", func(req *dns.Msg, _ bool) *dns.Msg {
			return negative(req, dns.RcodeNameError, soa("test.", 300, 120))
		}, 120 * time.Second},
		{"NXDOMAIN with SOA TTL below its MINIMUM", func(req *dns.Msg, _ bool) *dns.Msg {
			return negative(req, dns.RcodeNameError, soa("test.", 30, 3600))
		}, 30 * time.Second},
		{"NODATA with SOA", func(req *dns.Msg, _ bool) *dns.Msg {
			return negative(req, dns.RcodeSuccess, soa("test.", 600, 600))
		}, 600 * time.Second},
		{"NXDOMAIN without SOA", func(req *dns.Msg, _ bool) *dns.Msg { return negative(req, dns.RcodeNameError) }, 0},
		{"NODATA without SOA", func(req *dns.Msg, _ bool) *dns.Msg { return negative(req, dns.RcodeSuccess) }, 0},
		{"negative TTL capped", func(req *dns.Msg, _ bool) *dns.Msg {
			return negative(req, dns.RcodeNameError, soa("test.", 86400, 86400))
		}, DefaultMaxNegativeTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.answer)
			c, clk := newCache(Options{})
			r := c.Resolver(s.addr)
			check := func(want int) {
				t.Helper()
				_, err := lookupTXT(t, r, "_dmarc.nowhere.test.")
				var de *net.DNSError
				if !errors.As(err, &de) || !de.IsNotFound {
					t.Fatalf("LookupTXT error = %v, want not found", err)
				}
				if n := s.count("udp TXT _dmarc.nowhere.test."); n != want {
					t.Fatalf("%d queries reached the server, want %d", n, want)
				}
			}
			check(1)
			if tc.keep == 0 {
				check(2)
				return
			}
			clk.advance(tc.keep - time.Second)
			check(1)
			clk.advance(time.Second)
			check(2)
		})
	}
}

func TestFailuresNotKept(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(req *dns.Msg, _ bool) *dns.Msg
	}{
		{"SERVFAIL", func(req *dns.Msg, _ bool) *dns.Msg {
			return negative(req, dns.RcodeServerFailure, soa("test.", 300, 300))
		}},
		{"REFUSED", func(req *dns.Msg, _ bool) *dns.Msg { return negative(req, dns.RcodeRefused) }},
		{"TTL 0", func(req *dns.Msg, _ bool) *dns.Msg { return txt(req, 0, "v=spf1 -all") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.answer)
			c, _ := newCache(Options{})
			r := c.Resolver(s.addr)
			lookupTXT(t, r, "a.test.")
			lookupTXT(t, r, "a.test.")
			if n := s.count("udp TXT a.test."); n < 2 {
				t.Errorf("%d queries reached the server for two lookups, want every one (not kept)", n)
			}
			if st := c.Stats(); st.Entries != 0 {
				t.Errorf("the cache holds %d entries, want none", st.Entries)
			}
		})
	}
}

func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	long := strings.Repeat("x", 250)
	s := startServer(t, func(req *dns.Msg, tcp bool) *dns.Msg {
		m := txt(req, 300, long, long, long, long, long, long) // ~1.5 KiB: over the 1232 of EDNS0
		if !tcp {
			m.Answer, m.Truncated = nil, true
		}
		return m
	})
	c, _ := newCache(Options{})
	r := c.Resolver(s.addr)
	for range 2 {
		got, err := lookupTXT(t, r, "big.test.")
		if err != nil || len(got) != 6 {
			t.Fatalf("LookupTXT = %d records, %v; want 6", len(got), err)
		}
	}
	if u, tc := s.count("udp TXT big.test."), s.count("tcp TXT big.test."); u != 1 || tc != 1 {
		t.Errorf("queries over UDP %d, over TCP %d; want 1 and 1 (the TCP answer kept, the truncated one not)", u, tc)
	}
}

func TestUnansweredQueryTimesOut(t *testing.T) {
	s := startServer(t, func(*dns.Msg, bool) *dns.Msg { return nil }) // never answers
	c, _ := newCache(Options{})
	r := c.Resolver(s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.LookupTXT(ctx, "slow.test.")
	var de *net.DNSError
	if !errors.As(err, &de) || de.IsNotFound {
		t.Fatalf("LookupTXT error = %v, want a DNS failure that is not 'not found'", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the lookup took %v with a 300 ms context", took)
	}
	// The server answers again: nothing of the failure was kept.
	s.setAnswer(func(req *dns.Msg, _ bool) *dns.Msg { return txt(req, 60, "ok") })
	if got, err := lookupTXT(t, r, "slow.test."); err != nil || len(got) != 1 {
		t.Errorf("LookupTXT after the server came back = %q, %v", got, err)
	}
}

func TestBoundedSizeEvictsLeastRecentlyUsed(t *testing.T) {
	s := startServer(t, func(req *dns.Msg, _ bool) *dns.Msg { return txt(req, 3600, strings.Repeat("v", 200)) })
	c, _ := newCache(Options{MaxBytes: 4000})
	r := c.Resolver(s.addr)
	lookupTXT(t, r, "keep.test.")
	for i := range 40 {
		lookupTXT(t, r, fmt.Sprintf("n%d.test.", i))
		lookupTXT(t, r, "keep.test.") // used all along: never the least recent
		if st := c.Stats(); st.Bytes > 4000 {
			t.Fatalf("the cache holds %d bytes, over its 4000", st.Bytes)
		}
	}
	if n := s.count("udp TXT keep.test."); n != 1 {
		t.Errorf("the most recently used name was asked %d times, want 1", n)
	}
	lookupTXT(t, r, "n0.test.")
	if n := s.count("udp TXT n0.test."); n != 2 {
		t.Errorf("the oldest name was asked %d times, want 2 (evicted)", n)
	}
	if st := c.Stats(); st.Entries >= 40 || st.Entries < 2 {
		t.Errorf("the cache holds %d entries", st.Entries)
	}
}

func TestPositiveTTLCapped(t *testing.T) {
	s := startServer(t, func(req *dns.Msg, _ bool) *dns.Msg { return txt(req, 7*86400, "x") })
	c, clk := newCache(Options{MaxTTL: time.Hour})
	r := c.Resolver(s.addr)
	lookupTXT(t, r, "a.test.")
	clk.advance(time.Hour)
	lookupTXT(t, r, "a.test.")
	if n := s.count("udp TXT a.test."); n != 2 {
		t.Errorf("%d queries after MaxTTL, want 2", n)
	}
}

// TestConcurrentLookups runs with -race in CI: many lookups of a few names at once reach the
// server once per name, and every one gets the right answer.
func TestConcurrentLookups(t *testing.T) {
	s := startServer(t, func(req *dns.Msg, _ bool) *dns.Msg {
		return txt(req, 3600, "for "+strings.ToLower(req.Question[0].Name))
	})
	c, _ := newCache(Options{})
	r := c.Resolver(s.addr)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 40 {
		wg.Go(func() {
			for i := range 5 {
				name := fmt.Sprintf("n%d.test.", (g+i)%5)
				got, err := lookupTXT(t, r, name)
				if err != nil || len(got) != 1 || got[0] != "for "+name {
					errs <- fmt.Errorf("LookupTXT(%s) = %q, %v", name, got, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 5 {
		if n := s.count(fmt.Sprintf("udp TXT n%d.test.", i)); n != 1 {
			t.Errorf("n%d.test. reached the server %d times, want 1", i, n)
		}
	}
	if st := c.Stats(); st.Hits+st.Misses != 200 || st.Misses != 5 {
		t.Errorf("stats %+v, want 195 hits and 5 misses", st)
	}
}

// TestAnalyzeSurvivesDamage cuts and corrupts a real answer everywhere: never a panic, and a
// cut answer is never kept.
func TestAnalyzeSurvivesDamage(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("x.example.test.", dns.TypeMX)
	m := new(dns.Msg)
	m.SetReply(q)
	m.Answer = []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: "x.example.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "y.example.test."}}
	m.Ns = []dns.RR{soa("example.test.", 300, 300)}
	m.SetEdns0(1232, false)
	m.Compress = true
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	a, err := analyze(wire)
	if err != nil || !a.cache || !a.neg || a.ttl != 60 || len(a.ttlOffs) != 2 {
		t.Fatalf("analyze(whole) = %+v, %v; want a NODATA kept 60 s (the CNAME's TTL), 2 TTLs (not OPT's)", a, err)
	}
	for n := range len(wire) {
		if a, err := analyze(wire[:n]); err == nil && a.cache {
			t.Errorf("an answer cut at %d octets would be kept", n)
		}
	}
	for i := range wire {
		for _, v := range []byte{0, 0xC0, 0xFF, 63, 64} {
			b := append([]byte(nil), wire...)
			b[i] = v
			analyze(b)
		}
	}
}

// BenchmarkCachedLookup is what one lookup answered from the cache costs through Go's resolver
// (the MX makes two per message: SPF and DMARC), positive and negative.
func BenchmarkCachedLookup(b *testing.B) {
	s := &server{queries: map[string]int{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s.addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		if strings.HasPrefix(req.Question[0].Name, "_dmarc.") {
			w.WriteMsg(negative(req, dns.RcodeNameError, soa("test.", 300, 300)))
			return
		}
		w.WriteMsg(txt(req, 300, "v=spf1 -all"))
	})}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	r := New(Options{}).Resolver(s.addr)
	ctx := context.Background()
	for _, name := range []string{"a.test.", "_dmarc.a.test."} {
		b.Run(name, func(b *testing.B) {
			r.LookupTXT(ctx, name)
			b.ReportAllocs()
			for b.Loop() {
				r.LookupTXT(ctx, name)
			}
		})
	}
}
