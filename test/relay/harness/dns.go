package harness

import (
	"net"

	"github.com/kubemail/kubemail/internal/dnstest"
)

// DNS is an authoritative server for every name on loopback (internal/dnstest): the records it
// is told, NXDOMAIN for names it knows nothing of, NODATA for other types.
type DNS struct {
	*dnstest.Server
}

// StartDNS serves on addr (e.g. IP(53)+":53") over UDP and TCP until Stop.
func StartDNS(addr string) (*DNS, error) {
	s, err := dnstest.Listen(addr)
	if err != nil {
		return nil, err
	}
	return &DNS{s}, nil
}

// Stop ends the server.
func (d *DNS) Stop() { d.Close() }

// SetMX makes host (preference 10) the MX of domain and gives host the address ip.
func (d *DNS) SetMX(domain, host, ip string) {
	d.Server.SetMX(domain, &net.MX{Host: host, Pref: 10})
	d.SetA(host, ip)
}

// SetNullMX gives domain the null MX (a single MX "." of preference 0, RFC 7505).
func (d *DNS) SetNullMX(domain string) {
	d.Server.SetMX(domain, &net.MX{Host: ".", Pref: 0})
}
