package msgauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
)

// DefaultTimeout bounds all the DNS work of one message's checks.
const DefaultTimeout = 20 * time.Second

// maxSignatures is how many DKIM-Signature fields of one message are verified (RFC 6376 6.1
// lets a verifier limit them; each costs a DNS lookup).
const maxSignatures = 5

// Verifier checks inbound mail: SPF, DKIM and DMARC. It is safe for concurrent use.
type Verifier struct {
	// Hostname is the authserv-id of the Authentication-Results field (RFC 8601 2.5).
	Hostname string
	// Resolver does every lookup; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Timeout bounds the checks of one message, from MAIL on; 0 means DefaultTimeout.
	Timeout time.Duration
	Logger  *slog.Logger

	iprevs iprevCache // recent iprev checks by address (see StartIPRev)
}

func (v *Verifier) resolver() *net.Resolver {
	if v.Resolver != nil {
		return v.Resolver
	}
	return net.DefaultResolver
}

func (v *Verifier) log() *slog.Logger {
	if v.Logger != nil {
		return v.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (v *Verifier) timeout() time.Duration {
	if v.Timeout > 0 {
		return v.Timeout
	}
	return DefaultTimeout
}

// SPFCheck is an SPF check running in the background from MAIL on.
type SPFCheck struct {
	done   chan struct{}
	cancel context.CancelFunc
	Result spf.Result
	Reason string // why, for temperror and permerror
	// Domain is the identity checked: the MAIL FROM domain, or the HELO name for the null
	// sender (RFC 7208 2.4).
	Domain   string
	MailFrom string // the MAIL FROM address, "" for the null sender
	Helo     string
}

// StartSPF begins the SPF check (RFC 7208 4) of the client ip for the MAIL FROM identity, or the
// HELO identity when mailFrom is the null sender, and returns at once. Cancel it when the
// transaction ends without data.
func (v *Verifier) StartSPF(ctx context.Context, ip netip.Addr, helo, mailFrom string) *SPFCheck {
	ctx, cancel := context.WithTimeout(ctx, v.timeout())
	c := &SPFCheck{done: make(chan struct{}), cancel: cancel, MailFrom: mailFrom, Helo: helo}
	sender := mailFrom
	if sender == "" {
		// RFC 7208 2.4: the null sender is checked as postmaster@<HELO name>.
		sender = "postmaster@" + helo
	}
	at := strings.LastIndexByte(sender, '@')
	c.Domain = asciiDomain(sender[at+1:])
	sender = sender[:at+1] + c.Domain
	if c.Domain == "" || strings.HasPrefix(c.Domain, "[") || !strings.Contains(c.Domain, ".") {
		// An address literal or a dotless HELO is no domain to check (RFC 7208 2.3).
		c.Result = spf.None
		close(c.done)
		return c
	}
	go func() {
		defer close(c.done)
		defer func() {
			// Input from the network and DNS must never take the server down.
			if p := recover(); p != nil {
				v.log().Error("Recovered from a panic in the SPF check", "domain", c.Domain, "panic", p)
				c.Result, c.Reason = spf.PermError, "internal error"
			}
		}()
		res, err := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, sender,
			spf.WithContext(ctx), spf.WithResolver(v.resolver()))
		c.Result = res
		switch {
		case res == spf.TempError:
			// Not the error text: it names our resolver, which is no business of the reader.
			c.Reason = "DNS lookup failed"
		case res == spf.PermError && err != nil:
			c.Reason = err.Error()
		}
	}()
	return c
}

// Cancel stops the check; its result is then temperror if it had not finished.
func (c *SPFCheck) Cancel() { c.cancel() }

func (c *SPFCheck) wait(ctx context.Context) {
	select {
	case <-c.done:
	case <-ctx.Done():
		c.cancel()
		<-c.done
	}
}

// DKIMResult is the verification of one DKIM-Signature field.
type DKIMResult struct {
	Value      authres.ResultValue // pass, fail, neutral, temperror, permerror
	Domain     string              // d=
	Identifier string              // i=
	Reason     string
}

// Result is the outcome of the checks of one message.
type Result struct {
	SPF   *SPFCheck
	DKIM  []DKIMResult // one per signature verified; none when the message has none
	DMARC []DMARCResult
	// IPRev is the iprev check of the client address, nil when none was made.
	IPRev *IPRevCheck
	// Reject is set when DMARC failed for a From: domain whose policy is p=reject (RFC 7489
	// 6.6.4); RejectDomain names it. Whether to refuse is the receiving domain's choice.
	Reject       bool
	RejectDomain string
	// Quarantine is set when DMARC failed for a From: domain whose policy is p=quarantine, or
	// p=reject outside the pct= sample (RFC 7489 6.6.4: the next policy down), and the message
	// is not to be rejected: the MX delivers it into Junk. QuarantineDomain names the domain.
	Quarantine       bool
	QuarantineDomain string
	// Header is the Authentication-Results field (RFC 8601), CRLF-terminated, to prepend.
	Header []byte
}

// Verify reads the whole message (as received, without our trace fields), verifies its DKIM
// signatures, evaluates DMARC for its From: domains with the SPF result (waiting for the check
// started at MAIL) and returns the result, with the iprev check's when iprev is not nil
// (waiting for it too). A DNS failure is recorded as temperror, never as an error; the error is
// for a message that could not be read.
func (v *Verifier) Verify(ctx context.Context, spfCheck *SPFCheck, iprev *IPRevCheck, msg io.Reader) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout())
	defer cancel()
	br := getReader(msg)
	defer putReader(br) // raw is a copy; nothing reads br after Verify
	raw, fields, complete, err := readHeader(br)
	if err != nil && !errors.Is(err, errHeaderTooLong) {
		return nil, err
	}
	res := &Result{SPF: spfCheck, IPRev: iprev}
	froms := fromDomains(fields)

	// The DMARC records are looked up while the signatures are verified.
	records := make([]policyLookup, len(froms))
	var wg sync.WaitGroup
	for i, d := range froms {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					v.log().Error("Recovered from a panic in the DMARC lookup", "domain", d, "panic", p)
					records[i] = policyLookup{perm: "internal error"}
				}
			}()
			records[i] = v.lookupPolicy(ctx, d)
		})
	}
	if complete && count(fields, "dkim-signature") > 0 {
		res.DKIM, err = v.verifyDKIM(ctx, io.MultiReader(bytes.NewReader(raw), br))
		if err != nil {
			wg.Wait()
			return nil, err
		}
	} else if _, err := io.Copy(io.Discard, br); err != nil {
		wg.Wait()
		return nil, err
	}
	spfCheck.wait(ctx)
	if iprev != nil {
		res.IPRev = iprev.wait(ctx)
	}
	wg.Wait()
	for i, d := range froms {
		r := evaluate(d, records[i], spfCheck, res.DKIM)
		res.DMARC = append(res.DMARC, r)
		if r.reject && !res.Reject {
			res.Reject, res.RejectDomain = true, d
		}
		if r.quarantine && !res.Quarantine {
			res.Quarantine, res.QuarantineDomain = true, d
		}
	}
	if res.Reject {
		// A message refused, or delivered because the recipient domains chose so, is not
		// also quarantined for another From: domain: the smtp package decides from Reject.
		res.Quarantine, res.QuarantineDomain = false, ""
	}
	res.Header = v.header(res)
	return res, nil
}

func (v *Verifier) verifyDKIM(ctx context.Context, msg io.Reader) ([]DKIMResult, error) {
	verifs, err := dkim.VerifyWithOptions(msg, &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return v.lookupTXT(ctx, name) },
		MaxVerifications: maxSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// A header the dkim package cannot parse. (Its results are then unreliable: it may
		// have cleared the error of the signature that failed, so none of them count.)
		return []DKIMResult{{Value: authres.ResultPermError, Reason: err.Error()}}, nil
	}
	out := make([]DKIMResult, 0, len(verifs))
	for _, vf := range verifs {
		r := DKIMResult{Value: authres.ResultPass, Domain: strings.ToLower(vf.Domain), Identifier: vf.Identifier}
		switch {
		case vf.Err == nil:
		case dkim.IsTempFail(vf.Err):
			r.Value, r.Reason = authres.ResultTempError, "key lookup failed"
			v.log().Info("Failed looking up a DKIM key", "domain", r.Domain, "err", vf.Err)
		case dkim.IsPermFail(vf.Err):
			r.Value, r.Reason = authres.ResultPermError, vf.Err.Error()
		default:
			r.Value, r.Reason = authres.ResultFail, vf.Err.Error()
		}
		out = append(out, r)
	}
	return out, nil
}

// lookupTXT looks name up as an absolute name (no search domains).
func (v *Verifier) lookupTXT(ctx context.Context, name string) ([]string, error) {
	return v.resolver().LookupTXT(ctx, strings.TrimSuffix(name, ".")+".")
}
