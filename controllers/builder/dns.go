package builder

import (
	"net/netip"
	"strings"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// DomainName is md's domain as the mail server knows it: lower case, no trailing dot.
func DomainName(md *v1alpha1.MailDomain) string {
	return strings.ToLower(strings.TrimSuffix(md.Spec.Domain, "."))
}

// MailHost is the host name md's mail server announces and its MX record names.
func MailHost(md *v1alpha1.MailDomain) string { return "mail." + DomainName(md) }

// DNSRecords are the records md's owner publishes: the MX pointing at the mail host (RFC 5321
// 5.1), the mail host's addresses when the Service has external ones, SPF allowing the MX hosts
// to send (RFC 7208, soft fail for others), the DKIM key (RFC 6376 3.6.2) when there is one, and a DMARC policy that
// starts by only reporting (RFC 7489 6.3), to be tightened once the reports look right.
func DNSRecords(md *v1alpha1.MailDomain, dkimValue string, externalAddresses []string) []v1alpha1.DNSRecord {
	return MailDNSRecords(DomainName(md), MailHost(md), DKIMSelector, dkimValue, externalAddresses)
}

// MailDNSRecords are the records DNSRecords lists for domain (lower case, no trailing dot)
// served by the mail host host, whose DKIM key dkimValue is published under selector: what
// `kubemail dns` prints for a mail server run without Kubernetes, where the host name and the
// selector are the server's flags.
func MailDNSRecords(domain, host, selector, dkimValue string, externalAddresses []string) []v1alpha1.DNSRecord {
	domain = strings.TrimSuffix(domain, ".") + "."
	host = strings.TrimSuffix(host, ".") + "."
	records := []v1alpha1.DNSRecord{{Name: domain, Type: "MX", Value: "10 " + host}}
	var hostnames []string
	for _, a := range externalAddresses {
		ip, err := netip.ParseAddr(a)
		switch {
		case err != nil:
			hostnames = append(hostnames, strings.TrimSuffix(a, ".")+".")
		case ip.Is4():
			records = append(records, v1alpha1.DNSRecord{Name: host, Type: "A", Value: ip.String()})
		default:
			records = append(records, v1alpha1.DNSRecord{Name: host, Type: "AAAA", Value: ip.String()})
		}
	}
	// A CNAME cannot share its name with other records (RFC 1034 3.6.2): only for a load
	// balancer known by name alone.
	if len(records) == 1 && len(hostnames) > 0 {
		records = append(records, v1alpha1.DNSRecord{Name: host, Type: "CNAME", Value: hostnames[0]})
	}
	// Soft fail (~all), not -all: mail leaves the cluster from its egress address, which is
	// often not the Service's; DKIM (signed with this key) keeps DMARC aligned meanwhile. Add
	// the egress addresses as ip4:/ip6: and tighten to -all once they are known.
	records = append(records, v1alpha1.DNSRecord{Name: domain, Type: "TXT", Value: "v=spf1 mx ~all"})
	if dkimValue != "" {
		records = append(records, v1alpha1.DNSRecord{Name: selector + "._domainkey." + domain, Type: "TXT", Value: dkimValue})
	}
	records = append(records, v1alpha1.DNSRecord{Name: "_dmarc." + domain, Type: "TXT",
		Value: "v=DMARC1; p=none; rua=mailto:postmaster@" + strings.TrimSuffix(domain, ".")})
	return records
}
