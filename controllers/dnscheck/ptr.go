package dnscheck

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// ptr checks the reverse DNS of the mail server's address a: a PTR record naming the mail host
// (Domain.MailHost), whose addresses include a (forward-confirmed reverse DNS, which Gmail and
// Outlook require of a sending address). The PTR record is published by the address's owner,
// not in the domain's zone, so the finding says where to fix it.
func (c *check) ptr(ctx context.Context, a netip.Addr) Finding {
	want := strings.ToLower(fqdn(c.domain.MailHost))
	fix := fmt.Sprintf("set the reverse DNS of %s to %s at your cloud provider or IP owner", a, want)
	names, err := c.r.LookupAddr(ctx, a.String())
	if len(names) == 0 && err != nil {
		f := lookupFinding(err)
		if f.Outcome == Missing {
			f.Found += ": " + fix
		}
		return f
	}
	if len(names) == 0 {
		return Finding{Outcome: Missing, Found: "none published: " + fix}
	}
	var others []string
	for _, n := range names {
		if !sameHost(n, want) {
			others = append(others, strings.ToLower(fqdn(n)))
		}
	}
	if len(others) == len(names) {
		slices.Sort(others)
		return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found %s, not %s: %s", strings.Join(others, ", "), want, fix)}
	}

	// Forward confirmation: the name the PTR gives has a among its addresses.
	addrs, err := c.r.LookupIPAddr(ctx, want)
	if err != nil {
		f := lookupFinding(err)
		if f.Outcome == Failed {
			f.Found += " (the addresses of " + want + ")"
			return f
		}
		addrs = nil // NXDOMAIN or no address: not confirmed
	}
	var found []string
	for _, ia := range addrs {
		ip, ok := netip.AddrFromSlice(ia.IP)
		if !ok {
			continue
		}
		if ip.Unmap() == a.Unmap() {
			return Finding{}
		}
		found = append(found, ip.Unmap().String())
	}
	has := "it has no address"
	if len(found) > 0 {
		slices.Sort(found)
		has = "it has " + strings.Join(found, ", ")
	}
	typ := "A"
	if !a.Unmap().Is4() {
		typ = "AAAA"
	}
	return Finding{Outcome: Mismatch, Found: fmt.Sprintf("%s does not resolve back to %s (%s): publish the %s record %s %s of status.dnsRecords",
		want, a, has, typ, want, a)}
}

// PTRRecord is the record the owner of a publishes for the mail host: its reverse name
// (RFC 1035 3.5, RFC 3596 2.5) pointing at host. It is not in the domain's zone, so it is not
// among the records of status.dnsRecords.
func PTRRecord(a netip.Addr, host string) v1alpha1.DNSRecord {
	a = a.Unmap()
	var labels []string
	if a.Is4() {
		b := a.As4()
		for i := len(b) - 1; i >= 0; i-- {
			labels = append(labels, strconv.Itoa(int(b[i])))
		}
		labels = append(labels, "in-addr.arpa.")
	} else {
		b := a.As16()
		for i := len(b) - 1; i >= 0; i-- {
			labels = append(labels, strconv.FormatUint(uint64(b[i]&0xf), 16), strconv.FormatUint(uint64(b[i]>>4), 16))
		}
		labels = append(labels, "ip6.arpa.")
	}
	return v1alpha1.DNSRecord{Name: strings.Join(labels, "."), Type: "PTR", Value: strings.ToLower(fqdn(host))}
}

// what says what the report's findings are of, for the condition's message: the records of
// status.dnsRecords, and the PTR records of the mail server's addresses when checked.
func (r Report) what() string {
	ptrs := 0
	for _, f := range r.Findings {
		if f.Address.IsValid() {
			ptrs++
		}
	}
	switch ptrs {
	case 0:
		return "records of status.dnsRecords"
	case 1:
		return fmt.Sprintf("records (the %d of status.dnsRecords and the PTR record of the mail server's address)", len(r.Findings)-ptrs)
	default:
		return fmt.Sprintf("records (the %d of status.dnsRecords and the PTR records of the mail server's %d addresses)", len(r.Findings)-ptrs, ptrs)
	}
}
