package msgauth

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// DMARCResult is the DMARC evaluation (RFC 7489 6.6) for one From: domain.
type DMARCResult struct {
	Value      authres.ResultValue // pass, fail, none, temperror, permerror
	From       string              // the From: domain
	Policy     dmarc.Policy        // the policy that applies ("" when there is no record)
	Reason     string
	reject     bool
	quarantine bool
}

// policyLookup is the DMARC record found for a From: domain.
type policyLookup struct {
	record *dmarc.Record
	org    bool   // found at the organizational domain, not the From: domain itself
	temp   string // a lookup failed temporarily: why
	perm   string // the record is malformed: why
}

// OrganizationalDomain is domain's registered domain by the public suffix list (RFC 7489 3.2),
// e.g. "mail.example.co.uk" -> "example.co.uk"; a name under no known suffix counts its last
// label as the suffix ("sub.a.test" -> "a.test"), and a public suffix is its own.
func OrganizationalDomain(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// lookupPolicy finds the DMARC record of a From: domain: at _dmarc.<domain>, else at
// _dmarc.<organizational domain> (RFC 7489 6.6.3).
func (v *Verifier) lookupPolicy(ctx context.Context, domain string) policyLookup {
	rec, temp, perm := v.lookupRecord(ctx, domain)
	if rec != nil || temp != "" || perm != "" {
		return policyLookup{record: rec, temp: temp, perm: perm}
	}
	org := OrganizationalDomain(domain)
	if org == domain {
		return policyLookup{}
	}
	rec, temp, perm = v.lookupRecord(ctx, org)
	return policyLookup{record: rec, org: true, temp: temp, perm: perm}
}

// lookupRecord returns the one DMARC record at _dmarc.<domain>; nil with no reason when there is
// none (no name, no TXT, no "v=DMARC1" record, or more than one: RFC 7489 6.6.3 step 3).
func (v *Verifier) lookupRecord(ctx context.Context, domain string) (rec *dmarc.Record, temp, perm string) {
	txts, err := v.lookupTXT(ctx, "_dmarc."+domain)
	var dnsErr *net.DNSError
	switch {
	case err == nil:
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return nil, "", ""
	default:
		v.log().Info("Failed looking up a DMARC record", "domain", domain, "err", err)
		return nil, "DNS lookup failed", ""
	}
	var found []string
	for _, t := range txts {
		// RFC 7489 6.6.3: records not starting with "v=DMARC1" are discarded.
		if strings.HasPrefix(strings.TrimSpace(t), "v=DMARC1") {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return nil, "", ""
	}
	rec, err = dmarc.Parse(found[0])
	if err != nil {
		return nil, "", "bad DMARC record of " + domain + ": " + err.Error()
	}
	return rec, "", ""
}

// evaluate is DMARC for one From: domain (RFC 7489 4.2, 6.6.2): pass when an SPF pass or a
// DKIM pass has an identifier aligned with it, relaxed (same organizational domain) or strict
// (same domain) as the record's aspf/adkim say.
func evaluate(from string, pl policyLookup, spfCheck *SPFCheck, dkims []DKIMResult) DMARCResult {
	r := DMARCResult{From: from}
	switch {
	case pl.temp != "":
		r.Value, r.Reason = authres.ResultTempError, pl.temp
		return r
	case pl.perm != "":
		r.Value, r.Reason = authres.ResultPermError, pl.perm
		return r
	case pl.record == nil:
		r.Value = authres.ResultNone
		return r
	}
	rec := pl.record
	r.Policy = rec.Policy
	if pl.org && rec.SubdomainPolicy != "" {
		r.Policy = rec.SubdomainPolicy // RFC 7489 6.3 sp: for subdomains of the organizational domain
	}
	temp := false
	if spfCheck.Result == spf.Pass && aligned(spfCheck.Domain, from, rec.SPFAlignment) {
		r.Value = authres.ResultPass
		return r
	}
	if spfCheck.Result == spf.TempError && aligned(spfCheck.Domain, from, rec.SPFAlignment) {
		temp = true
	}
	for _, d := range dkims {
		if !aligned(d.Domain, from, rec.DKIMAlignment) {
			continue
		}
		switch d.Value {
		case authres.ResultPass:
			r.Value = authres.ResultPass
			return r
		case authres.ResultTempError:
			temp = true
		}
	}
	if temp {
		// An aligned pass might have been found with DNS working: no verdict, never a refusal.
		r.Value, r.Reason = authres.ResultTempError, "SPF or DKIM lookup failed"
		return r
	}
	r.Value = authres.ResultFail
	// RFC 7489 6.6.4: pct= applies the policy to that share of failing mail only; the rest
	// gets the next policy down (reject -> quarantine, quarantine -> none).
	sampled := rec.Percent == nil || rand.IntN(100) < *rec.Percent
	switch r.Policy {
	case dmarc.PolicyReject:
		r.reject, r.quarantine = sampled, !sampled
	case dmarc.PolicyQuarantine:
		r.quarantine = sampled
	}
	return r
}

func aligned(id, from string, mode dmarc.AlignmentMode) bool {
	id = strings.ToLower(strings.TrimSuffix(id, "."))
	if id == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return id == from
	}
	return OrganizationalDomain(id) == OrganizationalDomain(from)
}
