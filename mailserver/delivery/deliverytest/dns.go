// Package deliverytest runs the remote side of outbound delivery for tests, with real parts: a
// DNS server (github.com/miekg/dns) answering MX, A and TXT records on loopback, and real kubemail
// MX and submission servers (mailserver/smtp over mailserver/store) on 127.0.0.x addresses.
package deliverytest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/kubemail/kubemail/mailserver/delivery"
)

// DNS is an authoritative test server for every name: what it is told, NXDOMAIN otherwise.
type DNS struct {
	Addr string // "127.0.0.1:port", UDP and TCP

	mu       sync.Mutex
	mx       map[string][]*net.MX
	a        map[string][]netip.Addr
	txt      map[string][]string
	servfail map[string]bool
	queries  map[string]int // "MX b.test." -> count
}

// StartDNS serves until the test ends.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	d := &DNS{mx: map[string][]*net.MX{}, a: map[string][]netip.Addr{}, txt: map[string][]string{}, servfail: map[string]bool{}, queries: map[string]int{}}
	// UDP and TCP on the same port; the TCP port may be taken (by any client's ephemeral port).
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		d.Addr = pc.LocalAddr().String()
		if ln, err = net.Listen("tcp", d.Addr); err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: d}
	tcp := &dns.Server{Listener: ln, Handler: d}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return d
}

// Resolver sends queries to this server.
func (d *DNS) Resolver() *net.Resolver { return delivery.NewResolver(d.Addr) }

// SetMX sets the MX records of domain; host "." with a single record is a null MX (RFC 7505).
func (d *DNS) SetMX(domain string, mxs ...*net.MX) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mx[dns.Fqdn(domain)] = mxs
}

// SetA sets the A records of host.
func (d *DNS) SetA(host string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ips []netip.Addr
	for _, a := range addrs {
		ips = append(ips, netip.MustParseAddr(a))
	}
	d.a[dns.Fqdn(host)] = ips
}

// SetTXT sets the TXT records of name, one per value (SPF, DKIM and DMARC records); a value
// over 255 octets is served as several strings of one record, as DNS requires. No values
// removes them.
func (d *DNS) SetTXT(name string, values ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(values) == 0 {
		delete(d.txt, dns.Fqdn(strings.ToLower(name)))
		return
	}
	d.txt[dns.Fqdn(strings.ToLower(name))] = values
}

// SetServfail makes every query for name fail with SERVFAIL (or stop failing).
func (d *DNS) SetServfail(name string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.servfail[dns.Fqdn(name)] = on
}

// Queries is how many queries of type qtype ("MX", "A") for name arrived.
func (d *DNS) Queries(qtype, name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[qtype+" "+dns.Fqdn(name)]
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
		d.queries[dns.TypeToString[q.Qtype]+" "+name]++
		if d.servfail[name] {
			m.Rcode = dns.RcodeServerFailure
			continue
		}
		_, hasMX := d.mx[name]
		_, hasA := d.a[name]
		_, hasTXT := d.txt[name]
		if !hasMX && !hasA && !hasTXT {
			m.Rcode = dns.RcodeNameError
			continue
		}
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
		switch q.Qtype {
		case dns.TypeMX:
			for _, mx := range d.mx[name] {
				h := hdr
				h.Rrtype = dns.TypeMX
				m.Answer = append(m.Answer, &dns.MX{Hdr: h, Preference: mx.Pref, Mx: dns.Fqdn(mx.Host)})
			}
		case dns.TypeA:
			for _, ip := range d.a[name] {
				if ip.Is4() {
					h := hdr
					h.Rrtype = dns.TypeA
					m.Answer = append(m.Answer, &dns.A{Hdr: h, A: ip.AsSlice()})
				}
			}
		case dns.TypeTXT:
			for _, v := range d.txt[name] {
				h := hdr
				h.Rrtype = dns.TypeTXT
				var strs []string
				for len(v) > 255 {
					strs, v = append(strs, v[:255]), v[255:]
				}
				m.Answer = append(m.Answer, &dns.TXT{Hdr: h, Txt: append(strs, v)})
			}
		}
		// Other types: NOERROR with no answer (NODATA).
	}
	w.WriteMsg(m)
}
