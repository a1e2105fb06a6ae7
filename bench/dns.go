package main

import (
	"net"

	"github.com/miekg/dns"
)

// startDNS serves every query on loopback with an authoritative "no such domain", and returns
// its address. kubemail's MX checks SPF and DMARC for each message; this answers those lookups
// as fast as a local caching resolver would for a sender domain without records, so the bench
// measures the checks' real cost without depending on this machine's (absent) network.
func startDNS() (addr string, stop func(), err error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNameError)
		m.Authoritative = true
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	return pc.LocalAddr().String(), func() { srv.Shutdown() }, nil
}
