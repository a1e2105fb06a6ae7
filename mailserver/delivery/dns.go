package delivery

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
)

// lookupMX returns the hosts to try for domain, best first (RFC 5321 5.1), or the final result
// for every recipient when there are none.
func (c *Client) lookupMX(ctx context.Context, domain string) ([]string, *Result) {
	// The name is absolute: no resolv.conf search domain is ever appended to a mail domain.
	mxs, err := c.opts.Resolver.LookupMX(ctx, domain+".")
	var dnsErr *net.DNSError
	switch {
	case err == nil:
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		// No MX records (NODATA) or no such domain. With no MX, the domain itself is the
		// implicit MX (RFC 5321 5.1); whether the domain exists shows in the address lookup.
		return []string{domain}, nil
	default:
		r := local("", "4.4.3", "MX lookup for %s failed: %v", domain, err)
		return nil, &r
	}
	// RFC 7505 3: a single MX with the root as exchange says the domain takes no mail.
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		r := local("", "5.1.10", "Domain %s does not accept mail (null MX, RFC 7505)", domain)
		return nil, &r
	}
	if len(mxs) == 0 {
		return []string{domain}, nil
	}
	// Equal preferences are tried in random order to spread the load (RFC 5321 5.1).
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	hosts := make([]string, 0, len(mxs))
	for _, mx := range mxs {
		if mx.Host == "." {
			continue // a null MX among real ones is malformed; skip it (RFC 7505 4.3)
		}
		hosts = append(hosts, strings.TrimSuffix(mx.Host, "."))
	}
	return hosts, nil
}

// lookupAddrs returns the addresses of host, or the result to give when there are none: permanent
// when the name does not exist, temporary when the lookup failed. MX hosts are looked up as
// absolute names; smarthosts and static routes as configured (a Kubernetes Service name may
// rely on the search domains).
func (c *Client) lookupAddrs(ctx context.Context, host string, absolute bool) ([]netip.Addr, *Result) {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{ip}, nil
	}
	name := host
	if absolute {
		name += "."
	}
	addrs, err := c.opts.Resolver.LookupNetIP(ctx, "ip", name)
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(addrs) > 0:
		out := make([]netip.Addr, len(addrs))
		for i, a := range addrs {
			out[i] = a.Unmap()
		}
		return out, nil
	case err == nil, errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		r := local("", "5.4.4", "Host or domain name not found: %s", host)
		return nil, &r
	default:
		r := local("", "4.4.3", "Address lookup for %s failed: %v", host, err)
		return nil, &r
	}
}
