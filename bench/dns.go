package main

import (
	"net"

	"github.com/miekg/dns"
)

// startDNS serves every query on loopback with an authoritative "no such domain", and returns
// its address. kubemail's MX checks SPF and DMARC for each message; this answers those lookups
// as a name server answers for a sender domain without records, without depending on this
// machine's (absent) network.
//
// With negTTL > 0 the answer carries the SOA of the zone "test." with that TTL and MINIMUM, as
// every real authoritative server's NXDOMAIN does (RFC 2308 3), so a caching resolver may keep
// it for negTTL seconds (RFC 2308 5): kubemail's cache does (package dnscache), as the system's
// caching resolver that Postfix relies on would. With negTTL 0 there is no SOA and the answer
// may not be cached: every message then costs its lookups (-dns-negative-ttl 0 shows that).
func startDNS(negTTL uint32) (addr string, stop func(), err error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNameError)
		m.Authoritative = true
		if negTTL > 0 {
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negTTL},
				Ns: "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 604800, Minttl: negTTL}}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	return pc.LocalAddr().String(), func() { srv.Shutdown() }, nil
}
