package dnscheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"blitiri.com.ar/go/spf"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// isSPF reports whether a TXT value (lower case) is an SPF record (RFC 7208 4.5: "v=spf1"
// alone or followed by a space).
func isSPF(lower string) bool {
	return lower == "v=spf1" || strings.HasPrefix(lower, "v=spf1 ")
}

// spf checks that the domain has exactly one SPF record and that it passes the mail server's
// public addresses.
func (c *check) spf(ctx context.Context, rec v1alpha1.DNSRecord) Finding {
	txts, err := c.r.LookupTXT(ctx, fqdn(rec.Name))
	if err != nil {
		return lookupFinding(err)
	}
	var records []string
	for _, t := range txts {
		if isSPF(strings.ToLower(t)) {
			records = append(records, t)
		}
	}
	switch {
	case len(records) == 0:
		return Finding{Outcome: Missing, Found: "no v=spf1 record published"}
	case len(records) > 1:
		// RFC 7208 3.2 and 4.5: receivers treat more than one as a permerror.
		return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found %d v=spf1 records (%s): more than one is a permerror (RFC 7208 3.2), merge them into one",
			len(records), quoteAll(records))}
	}
	addrs := slices.Clone(c.domain.Addresses)
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		res, _ := spf.CheckHostWithSender(net.IP(a.Unmap().AsSlice()), c.domain.Name, "postmaster@"+c.domain.Name,
			spf.WithResolver(c.r), spf.WithContext(ctx))
		switch res {
		case spf.Pass:
		case spf.TempError:
			return Finding{Outcome: Failed, Found: fmt.Sprintf("lookup failed while evaluating %q for %s (temperror)", abbreviate(records[0], 60), a)}
		default:
			return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found %q, which gives %s for the mail server's address %s, not pass",
				abbreviate(records[0], 60), res, a)}
		}
	}
	return Finding{}
}

// tags parses a tag=value list (RFC 6376 3.2, also DMARC's, RFC 7489 6.4): names in lower
// case, values with surrounding whitespace removed. ok is false when a part has no '='.
func tags(record string) (names []string, values map[string]string, ok bool) {
	values = map[string]string{}
	for _, part := range strings.Split(record, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, found := strings.Cut(part, "=")
		if !found {
			return names, values, false
		}
		name = strings.ToLower(strings.TrimSpace(name))
		names = append(names, name)
		values[name] = strings.TrimSpace(value)
	}
	return names, values, true
}

// dkimKey returns the p= of a DKIM key record (RFC 6376 3.6.1: v=, if there, is first and
// DKIM1; p= is required), whitespace removed, and whether txt is one.
func dkimKey(txt string) (string, bool) {
	names, values, ok := tags(txt)
	if !ok || len(names) == 0 {
		return "", false
	}
	if v, has := values["v"]; has && (names[0] != "v" || v != "DKIM1") {
		return "", false
	}
	p, has := values["p"]
	return noSpace(p), has
}

// dkim checks that the selector's name holds one key record, with our public key.
func (c *check) dkim(ctx context.Context, rec v1alpha1.DNSRecord) Finding {
	want, _ := dkimKey(rec.Value)
	txts, err := c.r.LookupTXT(ctx, fqdn(rec.Name))
	if err != nil {
		return lookupFinding(err)
	}
	var keys []string
	for _, t := range txts {
		if p, ok := dkimKey(t); ok {
			keys = append(keys, p)
		}
	}
	switch {
	case len(keys) == 0 && len(txts) == 0:
		return Finding{Outcome: Missing, Found: "none published"}
	case len(keys) == 0:
		return Finding{Outcome: Mismatch, Found: "found no DKIM key record, only " + quoteAll(txts)}
	case len(keys) > 1:
		// Verifiers take one of them (RFC 6376 3.6.2.2 leaves which undefined).
		return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found %d DKIM key records: verifiers use only one, keep just this domain's", len(keys))}
	}
	got := keys[0]
	switch {
	case got == want:
		return Finding{}
	case got == "":
		return Finding{Outcome: Mismatch, Found: "found a revoked DKIM key (empty p=)"}
	case strings.HasPrefix(want, got):
		return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found a truncated DKIM key (p=%s, %d of its %d characters): publish the whole value, as TXT strings of up to 255 characters each",
			shortKey(got), len(got), len(want))}
	default:
		return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found a DKIM key that is not this domain's (p=%s)", shortKey(got))}
	}
}

// shortKey shows enough of a base64 key to tell it from ours: RSA keys of a size share their
// first 40-odd characters, so the end is shown too.
func shortKey(p string) string {
	if len(p) <= 24 {
		return p
	}
	return p[:8] + "…" + p[len(p)-12:]
}

// dmarc checks that _dmarc.DOMAIN holds one DMARC record with a valid policy.
func (c *check) dmarc(ctx context.Context, rec v1alpha1.DNSRecord) Finding {
	txts, err := c.r.LookupTXT(ctx, fqdn(rec.Name))
	if err != nil {
		return lookupFinding(err)
	}
	var records []map[string]string
	var texts []string
	for _, t := range txts {
		// RFC 7489 6.4: v=DMARC1 first; 6.6.3 step 3: records that do not start so are ignored.
		if names, values, ok := tags(t); ok && len(names) > 0 && names[0] == "v" && values["v"] == "DMARC1" {
			records = append(records, values)
			texts = append(texts, t)
		}
	}
	switch {
	case len(records) == 0 && len(txts) == 0:
		return Finding{Outcome: Missing, Found: "none published"}
	case len(records) == 0:
		return Finding{Outcome: Mismatch, Found: "found no v=DMARC1 record, only " + quoteAll(txts)}
	case len(records) > 1:
		// RFC 7489 6.6.3 step 5: more than one record means no DMARC processing at all.
		return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found %d v=DMARC1 records (%s): receivers then apply none, keep one", len(records), quoteAll(texts))}
	}
	switch strings.ToLower(records[0]["p"]) {
	case "none":
		return Finding{Note: "the policy is p=none, so receivers only report; tighten it to p=quarantine or p=reject once the reports look right"}
	case "quarantine", "reject":
		return Finding{}
	default:
		return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found %q, without a valid policy (p=none, quarantine or reject)", abbreviate(texts[0], 60))}
	}
}
