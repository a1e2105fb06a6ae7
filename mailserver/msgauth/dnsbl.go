package msgauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DefaultDNSBLTimeout bounds one DNSBL lookup (the A query and, for a listed client, the TXT
// query); the client waits for it at RCPT.
const DefaultDNSBLTimeout = 5 * time.Second

// maxDNSBLReason is how much of a list's TXT record goes into a reply.
const maxDNSBLReason = 200

// errorCodes are the answers Spamhaus gives a query it refuses (127.255.255.252 typing error,
// .254 public resolver, .255 excessive queries): they say nothing about the client.
var errorCodes = netip.MustParsePrefix("127.255.255.0/24")

var loopback = netip.MustParsePrefix("127.0.0.0/8")

// DNSBLListing is the answer of one DNS blocklist about one client address.
type DNSBLListing struct {
	Listed bool
	// Codes are the answers that counted (RFC 5782 2.3); Ignored those that did not: outside
	// the return codes asked for, or error codes (127.255.255.0/24).
	Codes, Ignored []netip.Addr
	// Refused is set when an answer was an error code: the list refused the query (Spamhaus
	// refuses queries through public resolvers and over-quota ones).
	Refused bool
	// Reason is the list's TXT record for the address, when it is listed and has one, with
	// anything but printable ASCII replaced and cut to 200 octets, fit for an SMTP reply.
	Reason string
}

// DNSBLName is the name to look ip up at in zone (RFC 5782 2.1, 2.4): an IPv4 address's
// octets reversed ("2.0.0.127.zone."), an IPv6 address's 32 nibbles reversed. IPv4-mapped
// IPv6 addresses are looked up as IPv4.
func DNSBLName(ip netip.Addr, zone string) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.", a[3], a[2], a[1], a[0])
	} else {
		a := ip.As16()
		const hex = "0123456789abcdef"
		for i := len(a) - 1; i >= 0; i-- {
			b.WriteByte(hex[a[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hex[a[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(strings.TrimSuffix(zone, "."))
	b.WriteByte('.')
	return b.String()
}

// LookupDNSBL asks the blocklist zone whether it lists ip (RFC 5782 2.1): an A record at
// DNSBLName means listed, NXDOMAIN (or no A record) means not. codes are the answers that
// count; none counts every answer in 127.0.0.0/8 but the error codes 127.255.255.0/24, which
// never count, even when codes name them. For a listed address the TXT record at the same
// name is the reason (RFC 5782 2.1, optional: its failure is ignored). The lookups go through
// the Verifier's resolver (and its cache) and are bounded by DefaultDNSBLTimeout. An error is a
// DNS failure (SERVFAIL, timeout): the caller decides without the list.
func (v *Verifier) LookupDNSBL(ctx context.Context, ip netip.Addr, zone string, codes []netip.Prefix) (DNSBLListing, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultDNSBLTimeout)
	defer cancel()
	name := DNSBLName(ip, zone)
	var l DNSBLListing
	addrs, err := v.resolver().LookupNetIP(ctx, "ip4", name)
	var dnsErr *net.DNSError
	switch {
	case err == nil:
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return l, nil
	default:
		return l, fmt.Errorf("looking up %s: %w", name, err)
	}
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case errorCodes.Contains(a):
			l.Refused = true
			l.Ignored = append(l.Ignored, a)
		case counts(a, codes):
			l.Codes = append(l.Codes, a)
		default:
			l.Ignored = append(l.Ignored, a)
		}
	}
	l.Listed = len(l.Codes) > 0
	if l.Listed {
		if txts, err := v.resolver().LookupTXT(ctx, name); err == nil && len(txts) > 0 {
			l.Reason = printableASCII(txts[0], maxDNSBLReason)
		}
	}
	return l, nil
}

func counts(a netip.Addr, codes []netip.Prefix) bool {
	if len(codes) == 0 {
		return loopback.Contains(a)
	}
	for _, c := range codes {
		if c.Contains(a) {
			return true
		}
	}
	return false
}

// printableASCII returns s with every octet outside printable ASCII replaced by '?', cut to
// limit octets: DNS data going into an SMTP reply line.
func printableASCII(s string, limit int) string {
	b := make([]byte, 0, min(len(s), limit))
	for i := 0; i < len(s) && len(b) < limit; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	return strings.TrimSpace(string(b))
}
