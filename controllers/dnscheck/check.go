package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// DefaultLookupTimeout bounds one DNS lookup when Checker.LookupTimeout is zero.
const DefaultLookupTimeout = 5 * time.Second

// Reasons of the DNSPublished condition (Report.Condition).
const (
	ReasonPublished       = "Published"
	ReasonRecordsMissing  = "RecordsMissing"
	ReasonRecordsMismatch = "RecordsMismatch"
	ReasonLookupFailed    = "LookupFailed"
)

// Checker checks DNS records. Its zero value uses the system's name servers.
type Checker struct {
	// Resolver answers the lookups; nil means NewResolver("").
	Resolver Resolver
	// LookupTimeout bounds each lookup; zero means DefaultLookupTimeout.
	LookupTimeout time.Duration
}

// Domain is what to check for one mail domain.
type Domain struct {
	// Name is the domain, e.g. "example.com", used as the SPF sender domain.
	Name string
	// Records are the records that should be published (status.dnsRecords).
	Records []v1alpha1.DNSRecord
	// Addresses are the mail server's public addresses, when known: the SPF record must pass
	// for each of them.
	Addresses []netip.Addr
	// MailHost is the name the mail server announces (builder.MailHost), e.g.
	// "mail.example.com". When it is set, the reverse DNS of each of Addresses must name it and
	// be confirmed by its addresses (FCrDNS).
	MailHost string
}

// Outcome is what the check found for one record.
type Outcome int

const (
	// OK: the record is published as it should be.
	OK Outcome = iota
	// Missing: nothing of the record's type is published at its name.
	Missing
	// Mismatch: something else is published there.
	Mismatch
	// Failed: the lookup failed (SERVFAIL, timeout), so nothing is known.
	Failed
)

// Finding is the outcome of one record's check.
type Finding struct {
	// Record is the record checked: one of Domain.Records, or the PTR record of Address.
	Record v1alpha1.DNSRecord
	// Address is, for a PTR record, the mail server's address whose reverse DNS was checked.
	Address netip.Addr
	Outcome Outcome
	// Found says what was found when the outcome is not OK, e.g. "none published".
	Found string
	// Note is a remark on a published record, e.g. that a DMARC policy only reports.
	Note string
}

func (f Finding) String() string {
	return f.label() + ": " + f.Found
}

// label names the record: its type and name, or for a PTR record the address it is of.
func (f Finding) label() string {
	if f.Address.IsValid() {
		return f.Record.Type + " " + f.Address.String()
	}
	return f.Record.Type + " " + f.Record.Name
}

// Report holds the findings of one check: one per record, in the records' order, then one
// per address of the mail server for its PTR record, in the addresses' order, when
// Domain.MailHost is set.
type Report struct {
	Findings []Finding
}

// Check looks up every record of d concurrently and returns what it found. It returns when
// each lookup has answered or timed out, or ctx ends.
func (c *Checker) Check(ctx context.Context, d Domain) Report {
	r := c.Resolver
	if r == nil {
		r = NewResolver("")
	}
	timeout := c.LookupTimeout
	if timeout <= 0 {
		timeout = DefaultLookupTimeout
	}
	ck := &check{r: timed{r: r, timeout: timeout}, domain: d}
	var addrs []netip.Addr
	if d.MailHost != "" {
		addrs = slices.Clone(d.Addresses)
		slices.SortFunc(addrs, netip.Addr.Compare)
		addrs = slices.Compact(addrs)
	}
	findings := make([]Finding, len(d.Records)+len(addrs))
	var wg sync.WaitGroup
	for i, rec := range d.Records {
		wg.Go(func() {
			f := ck.record(ctx, rec)
			f.Record = rec
			findings[i] = f
		})
	}
	for i, a := range addrs {
		wg.Go(func() {
			f := ck.ptr(ctx, a)
			f.Record, f.Address = PTRRecord(a, d.MailHost), a
			findings[len(d.Records)+i] = f
		})
	}
	wg.Wait()
	return Report{Findings: findings}
}

// Condition folds the report into the DNSPublished condition's status, reason and message.
func (r Report) Condition() (metav1.ConditionStatus, string, string) {
	var wrong, failed, notes []string
	missing := false
	for _, f := range r.Findings {
		switch f.Outcome {
		case Missing, Mismatch:
			wrong = append(wrong, f.String())
			missing = missing || f.Outcome == Missing
		case Failed:
			failed = append(failed, f.String())
		}
		if f.Note != "" {
			notes = append(notes, f.label()+": "+f.Note)
		}
	}
	n := len(r.Findings)
	what := r.what()
	var tail string
	if len(failed) > 0 && len(wrong) > 0 {
		tail += fmt.Sprintf(" %d more could not be looked up: %s.", len(failed), strings.Join(failed, "; "))
	}
	if len(notes) > 0 {
		tail += " Note: " + strings.Join(notes, "; ") + "."
	}
	// Missing before Mismatch: a missing record often makes another one wrong (SPF's "mx"
	// needs the MX record), and publishing what is missing comes first.
	reason := ReasonRecordsMismatch
	if missing {
		reason = ReasonRecordsMissing
	}
	switch {
	case len(wrong) > 0:
		return metav1.ConditionFalse, reason,
			fmt.Sprintf("%d of %d %s are not published as they should be: %s.%s", len(wrong), n, what, strings.Join(wrong, "; "), tail)
	case len(failed) > 0:
		return metav1.ConditionUnknown, ReasonLookupFailed,
			fmt.Sprintf("%d of %d %s could not be looked up: %s.%s", len(failed), n, what, strings.Join(failed, "; "), tail)
	default:
		return metav1.ConditionTrue, ReasonPublished,
			fmt.Sprintf("All %d %s are published.%s", n, what, tail)
	}
}

// check is one run of Checker.Check.
type check struct {
	r      timed
	domain Domain
}

func (c *check) record(ctx context.Context, rec v1alpha1.DNSRecord) Finding {
	switch strings.ToUpper(rec.Type) {
	case "MX":
		return c.mx(ctx, rec)
	case "A", "AAAA":
		return c.address(ctx, rec)
	case "CNAME":
		return c.cname(ctx, rec)
	case "TXT":
		switch v := strings.ToLower(rec.Value); {
		case isSPF(v):
			return c.spf(ctx, rec)
		case strings.HasPrefix(v, "v=dkim1"):
			return c.dkim(ctx, rec)
		case strings.HasPrefix(v, "v=dmarc1"):
			return c.dmarc(ctx, rec)
		default:
			return c.txt(ctx, rec)
		}
	}
	return Finding{Outcome: Failed, Found: "cannot check records of type " + rec.Type}
}

// lookupFinding is the finding for a failed lookup: Missing for NXDOMAIN or no record of the
// type, Failed for anything else, with only the kind of failure in the text so that the
// same failure reads the same each time.
func lookupFinding(err error) Finding {
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		return Finding{Outcome: Missing, Found: "none published"}
	case errors.As(err, &de) && de.IsTimeout, errors.Is(err, context.DeadlineExceeded):
		return Finding{Outcome: Failed, Found: "lookup failed: no answer in time"}
	case errors.As(err, &de):
		return Finding{Outcome: Failed, Found: "lookup failed: " + de.Err}
	default:
		return Finding{Outcome: Failed, Found: "lookup failed: " + err.Error()}
	}
}

func (c *check) mx(ctx context.Context, rec v1alpha1.DNSRecord) Finding {
	fields := strings.Fields(rec.Value)
	want := fields[len(fields)-1]
	mxs, err := c.r.LookupMX(ctx, fqdn(rec.Name))
	if len(mxs) == 0 && err != nil {
		return lookupFinding(err)
	}
	var hosts []string
	for _, mx := range mxs {
		if sameHost(mx.Host, want) {
			return Finding{}
		}
		hosts = append(hosts, strings.ToLower(fqdn(mx.Host)))
	}
	if len(hosts) == 1 && hosts[0] == "." {
		// RFC 7505 3: a single MX with the root as its host says the domain takes no mail.
		return Finding{Outcome: Mismatch, Found: "found a null MX (\"0 .\": the domain accepts no mail)"}
	}
	if len(hosts) == 0 {
		return Finding{Outcome: Missing, Found: "none published"}
	}
	slices.Sort(hosts)
	return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found MX %s, not %s", strings.Join(hosts, ", "), fqdn(want))}
}

func (c *check) address(ctx context.Context, rec v1alpha1.DNSRecord) Finding {
	want, err := netip.ParseAddr(rec.Value)
	if err != nil {
		return Finding{Outcome: Failed, Found: fmt.Sprintf("cannot check the address %q: %v", rec.Value, err)}
	}
	addrs, err := c.r.LookupIPAddr(ctx, fqdn(rec.Name))
	if err != nil {
		return lookupFinding(err)
	}
	var found []string
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap().Is4() != want.Is4() {
			continue
		}
		if ip.Unmap() == want {
			return Finding{}
		}
		found = append(found, ip.Unmap().String())
	}
	if len(found) == 0 {
		return Finding{Outcome: Missing, Found: "none published"}
	}
	slices.Sort(found)
	return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found %s, not %s", strings.Join(found, ", "), want)}
}

func (c *check) cname(ctx context.Context, rec v1alpha1.DNSRecord) Finding {
	got, err := c.r.LookupCNAME(ctx, fqdn(rec.Name))
	if err != nil {
		return lookupFinding(err)
	}
	if sameHost(got, rec.Value) {
		return Finding{}
	}
	// The target may itself be an alias (load balancers' names often are): then the chain
	// ends where the target's does.
	if target, err := c.r.LookupCNAME(ctx, fqdn(rec.Value)); err == nil && sameHost(got, target) {
		return Finding{}
	}
	if sameHost(got, rec.Name) {
		return Finding{Outcome: Mismatch, Found: "found addresses of its own, no CNAME to " + fqdn(rec.Value)}
	}
	return Finding{Outcome: Mismatch, Found: fmt.Sprintf("found an alias of %s, not of %s", strings.ToLower(fqdn(got)), fqdn(rec.Value))}
}

// txt checks a TXT record of no kind the checker knows: the same text, whitespace ignored.
func (c *check) txt(ctx context.Context, rec v1alpha1.DNSRecord) Finding {
	txts, err := c.r.LookupTXT(ctx, fqdn(rec.Name))
	if err != nil {
		return lookupFinding(err)
	}
	for _, t := range txts {
		if noSpace(t) == noSpace(rec.Value) {
			return Finding{}
		}
	}
	if len(txts) == 0 {
		return Finding{Outcome: Missing, Found: "none published"}
	}
	return Finding{Outcome: Mismatch, Found: "found only " + quoteAll(txts)}
}

// fqdn adds the trailing dot, so that resolv.conf's search domains never apply.
func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func sameHost(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

func noSpace(s string) string {
	return strings.Join(strings.Fields(s), "")
}

// quoteAll quotes each TXT value, shortened, in sorted order; the first five of them.
func quoteAll(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = fmt.Sprintf("%q", abbreviate(v, 60))
	}
	slices.Sort(q)
	if len(q) > 5 {
		q = append(q[:5], fmt.Sprintf("and %d more", len(q)-5))
	}
	return strings.Join(q, ", ")
}

// abbreviate keeps the start and the end of a long value.
func abbreviate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:max/2] + "…" + s[len(s)-max/2+1:]
}
