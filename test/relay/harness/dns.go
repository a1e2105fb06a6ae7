package harness

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DNS is an authoritative server for every name on loopback: the MX, A and TXT records it is told,
// NXDOMAIN for names it knows nothing of, NODATA for other types.
type DNS struct {
	Addr string // host:port, UDP and TCP

	mu  sync.Mutex
	mx  map[string][]*net.MX
	a   map[string][]netip.Addr
	txt map[string][][]string // name -> records -> character-strings
	udp *dns.Server
	tcp *dns.Server
}

// StartDNS serves on addr (e.g. IP(53)+":53") over UDP and TCP.
func StartDNS(addr string) (*DNS, error) {
	d := &DNS{Addr: addr, mx: map[string][]*net.MX{}, a: map[string][]netip.Addr{}, txt: map[string][][]string{}}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("DNS: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("DNS: %w", err)
	}
	d.udp = &dns.Server{PacketConn: pc, Handler: d}
	d.tcp = &dns.Server{Listener: ln, Handler: d}
	started := make(chan struct{}, 2)
	d.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	d.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go d.udp.ActivateAndServe()
	go d.tcp.ActivateAndServe()
	for range 2 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			d.Stop()
			return nil, fmt.Errorf("DNS on %s did not start", addr)
		}
	}
	return d, nil
}

// Stop ends both servers.
func (d *DNS) Stop() {
	d.udp.Shutdown()
	d.tcp.Shutdown()
}

// SetMX makes host (preference 10) the MX of domain and gives host the address ip.
func (d *DNS) SetMX(domain, host, ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mx[dns.Fqdn(domain)] = []*net.MX{{Host: dns.Fqdn(host), Pref: 10}}
	d.a[dns.Fqdn(host)] = []netip.Addr{netip.MustParseAddr(ip)}
}

// SetNullMX gives domain the null MX (a single MX "." of preference 0, RFC 7505).
func (d *DNS) SetNullMX(domain string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mx[dns.Fqdn(domain)] = []*net.MX{{Host: ".", Pref: 0}}
}

// SetA gives host the address ip.
func (d *DNS) SetA(host, ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.a[dns.Fqdn(host)] = []netip.Addr{netip.MustParseAddr(ip)}
}

// AddTXT adds a TXT record to name, split into character-strings of at most 255 octets
// (RFC 6376 3.6.2.2 for long DKIM keys).
func (d *DNS) AddTXT(name, value string) {
	var strs []string
	for len(value) > 255 {
		strs = append(strs, value[:255])
		value = value[255:]
	}
	strs = append(strs, value)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[dns.Fqdn(name)] = append(d.txt[dns.Fqdn(name)], strs)
}

// ServeDNS answers one query.
func (d *DNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, q := range req.Question {
		name := strings.ToLower(q.Name)
		mxs, hasMX := d.mx[name]
		ips, hasA := d.a[name]
		txts, hasTXT := d.txt[name]
		if !hasMX && !hasA && !hasTXT {
			m.Rcode = dns.RcodeNameError
			continue
		}
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
		switch q.Qtype {
		case dns.TypeMX:
			for _, mx := range mxs {
				h := hdr
				h.Rrtype = dns.TypeMX
				m.Answer = append(m.Answer, &dns.MX{Hdr: h, Preference: mx.Pref, Mx: mx.Host})
			}
		case dns.TypeA:
			for _, ip := range ips {
				h := hdr
				h.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: h, A: ip.AsSlice()})
			}
		case dns.TypeTXT:
			for _, strs := range txts {
				h := hdr
				h.Rrtype = dns.TypeTXT
				m.Answer = append(m.Answer, &dns.TXT{Hdr: h, Txt: strs})
			}
		}
	}
	w.WriteMsg(m)
}
