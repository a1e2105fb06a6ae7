package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// DNSBL actions of the runtime config, the API's spellings.
const (
	DNSBLReject = string(v1alpha1.DNSBLReject)
	DNSBLJunk   = string(v1alpha1.DNSBLJunk)
)

// MaxDNSBLs is the most DNS blocklists one MailDomain may name (each costs a lookup per
// connection that reaches the domain).
const MaxDNSBLs = 16

// maxDNSBLZone leaves room in a 253-octet name for a reversed IPv6 address (32 nibbles and
// their dots, RFC 5782 2.4).
const maxDNSBLZone = 253 - 64

// DNSBL is a DNS blocklist (RFC 5782) the MX checks clients against for a domain's recipients.
type DNSBL struct {
	// Zone is the list's zone in lower case, without a trailing dot, e.g. "zen.spamhaus.org".
	Zone string `json:"zone"`
	// Action is DNSBLReject (554 5.7.1 at RCPT) or DNSBLJunk (delivered into Junk).
	Action string `json:"action"`
	// ReturnCodes are the answers that count as listed; empty counts all of 127.0.0.0/8 except
	// 127.255.255.0/24 (error codes, see msgauth.DNSBLQuery).
	ReturnCodes []netip.Prefix `json:"returnCodes,omitempty"`
}

// loopbackNet is where RFC 5782 2.3 puts every DNSBL answer.
var loopbackNet = netip.MustParsePrefix("127.0.0.0/8")

// resolveAntispam checks spec.antispam and returns the domain's DNSBLs, or the field at fault
// and what is wrong with it.
func resolveAntispam(spec *v1alpha1.AntispamSpec) (lists []DNSBL, field string, err error) {
	if spec == nil {
		return nil, "", nil
	}
	if len(spec.DNSBLs) > MaxDNSBLs {
		return nil, "spec.antispam.dnsbls", fmt.Errorf("%d lists; at most %d are allowed", len(spec.DNSBLs), MaxDNSBLs)
	}
	for i, l := range spec.DNSBLs {
		at := fmt.Sprintf("spec.antispam.dnsbls[%d]", i)
		zone := strings.ToLower(strings.TrimSuffix(l.Zone, "."))
		if err := CheckDomain(zone); err != nil {
			return nil, at + ".zone", fmt.Errorf("not a DNS zone: %w", err)
		}
		if len(zone) > maxDNSBLZone {
			return nil, at + ".zone", fmt.Errorf("longer than %d characters: a reversed IPv6 address would not fit in a DNS name", maxDNSBLZone)
		}
		for _, other := range lists {
			if other.Zone == zone {
				return nil, at + ".zone", fmt.Errorf("%q is listed twice", zone)
			}
		}
		d := DNSBL{Zone: zone, Action: string(l.Action)}
		switch l.Action {
		case "":
			d.Action = DNSBLReject
		case v1alpha1.DNSBLReject, v1alpha1.DNSBLJunk:
		default:
			return nil, at + ".action", fmt.Errorf("%q is not one of Reject, Junk", l.Action)
		}
		for j, c := range l.ReturnCodes {
			p, err := parseReturnCode(c)
			if err != nil {
				return nil, fmt.Sprintf("%s.returnCodes[%d]", at, j), err
			}
			d.ReturnCodes = append(d.ReturnCodes, p)
		}
		lists = append(lists, d)
	}
	return lists, "", nil
}

// parseReturnCode reads "127.0.0.2" or "127.0.0.4/30" (RFC 5782 2.3: answers are in 127/8).
func parseReturnCode(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("%q is not an IPv4 address or CIDR such as 127.0.0.2 or 127.0.0.4/30", s)
		}
		p = p.Masked()
	} else {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return p, fmt.Errorf("%q is not an IPv4 address or CIDR such as 127.0.0.2 or 127.0.0.4/30", s)
		}
		p = netip.PrefixFrom(ip, ip.BitLen())
	}
	if !p.Addr().Is4() || !loopbackNet.Contains(p.Addr()) || p.Bits() < loopbackNet.Bits() {
		return p, fmt.Errorf("%q is outside 127.0.0.0/8, where DNSBL answers are (RFC 5782 2.3)", s)
	}
	return p, nil
}
