package mtasts

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/idna"
)

// Options configure Policies. Zero fields take the defaults.
type Options struct {
	// Resolver looks up the TXT records and the policy host's addresses: the one of the MX
	// lookups (delivery.NewResolver, with its answer cache); nil means net.DefaultResolver.
	Resolver *net.Resolver
	// RootCAs verify the policy host's certificate; nil means the system's roots.
	RootCAs *x509.CertPool
	// Dir keeps the fetched policies across restarts; "" keeps them in memory only.
	Dir string
	// HTTPSPort of the policy hosts; 0 means 443. Only tests on loopback need another.
	HTTPSPort int
	// FetchTimeout bounds one policy fetch, from the connection to the last byte; 0 means 20 s.
	FetchTimeout time.Duration
	// Refresh is how old a cached policy may get before it is fetched again although its id
	// did not change (RFC 8461 3.3, 10.2); 0 means 24 h.
	Refresh time.Duration
	// RetryFetch is how long a failed fetch is not tried again for the same domain; 0 means
	// 5 min, <0 never waits.
	RetryFetch time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Policies discovers, fetches and caches the policies of recipient domains. It is safe for
// concurrent use.
type Policies struct {
	opts Options
	log  *slog.Logger
	http *http.Client

	mu        sync.Mutex
	cache     map[string]*Policy       // by domain: the last valid policy fetched, until it expires
	failedAt  map[string]time.Time     // by domain: the last fetch failed at
	inflightC map[string]chan struct{} // by domain: a fetch under way, closed when done
}

// New returns Policies with the policies kept in opts.Dir loaded (expired and unreadable ones
// are dropped, with a log line).
func New(opts Options) *Policies {
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.HTTPSPort == 0 {
		opts.HTTPSPort = 443
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 20 * time.Second
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 24 * time.Hour
	}
	if opts.RetryFetch == 0 {
		opts.RetryFetch = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Policies{opts: opts, log: opts.Logger, cache: map[string]*Policy{},
		failedAt: map[string]time.Time{}, inflightC: map[string]chan struct{}{}}
	p.http = p.newHTTPClient()
	p.load()
	return p
}

// Lookup returns the policy to apply to mail for domain, or nil when there is none (RFC 8461
// 3, 5.1): discovery through the TXT record, a fetch when the record's id differs from the
// cached policy's or the cached one is older than Options.Refresh, and the cached unexpired
// policy whenever the TXT lookup or the fetch fails. A policy in mode none is returned as it
// is: it replaces an earlier one. Lookup never fails: a failure is a log line and the cached
// policy (or none).
func (p *Policies) Lookup(ctx context.Context, domain string) *Policy {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if a, err := idna.Lookup.ToASCII(domain); err == nil {
		domain = a // an SMTPUTF8 recipient's domain: its A-labels name the records
	}
	if !isHostname(domain) {
		return nil
	}
	now := p.opts.Now()
	p.mu.Lock()
	cached := p.cachedLocked(domain, now)
	p.mu.Unlock()

	id, err := p.lookupRecord(ctx, domain)
	switch {
	case errors.Is(err, ErrNoRecord):
		// RFC 8461 5.1: a missing record does not remove a cached policy; an attacker who
		// can strip the TXT record must not be able to turn the policy off.
		if cached == nil && err != ErrNoRecord { //nolint:errorlint // ErrNoRecord itself is "none published"
			p.log.Info("Ignored a malformed MTA-STS record", "domain", domain, "err", err)
		}
		return cached
	case err != nil:
		if cached != nil {
			p.log.Info("Used the cached MTA-STS policy: the TXT lookup failed", "domain", domain, "mode", cached.Mode, "err", err)
		}
		return cached
	case cached != nil && cached.ID == id && now.Sub(cached.Fetched) < p.opts.Refresh:
		return cached
	}
	return p.refresh(ctx, domain, id, cached)
}

// refresh fetches domain's policy published under id, one fetch at a time per domain; callers
// that wait for another's fetch take its result.
func (p *Policies) refresh(ctx context.Context, domain, id string, cached *Policy) *Policy {
	p.mu.Lock()
	// Another lookup may have fetched it since this one looked.
	if c := p.cachedLocked(domain, p.opts.Now()); c != nil && c.ID == id && p.opts.Now().Sub(c.Fetched) < p.opts.Refresh {
		p.mu.Unlock()
		return c
	}
	if ch, busy := p.inflightC[domain]; busy {
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return cached
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if c := p.cachedLocked(domain, p.opts.Now()); c != nil {
			return c
		}
		return cached
	}
	if t, failed := p.failedAt[domain]; failed && p.opts.RetryFetch > 0 && p.opts.Now().Sub(t) < p.opts.RetryFetch {
		p.mu.Unlock()
		return cached
	}
	ch := make(chan struct{})
	p.inflightC[domain] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.inflightC, domain)
		p.mu.Unlock()
		close(ch)
	}()

	pol, body, err := p.fetch(ctx, domain)
	now := p.opts.Now()
	if err != nil {
		if ctx.Err() != nil {
			return cached // the delivery was cancelled (a shutdown): not the policy host's fault
		}
		p.mu.Lock()
		if len(p.failedAt) >= maxFailed {
			clear(p.failedAt)
		}
		p.failedAt[domain] = now
		p.mu.Unlock()
		// RFC 8461 3.3: no policy fetched and none cached is no policy; a cached unexpired one
		// goes on being applied (5.1).
		if cached != nil {
			p.log.Warn("Fetching the MTA-STS policy failed; kept the cached one", "domain", domain, "id", id, "mode", cached.Mode, "err", err)
		} else {
			p.log.Warn("Fetching the MTA-STS policy failed; delivering without one", "domain", domain, "id", id, "err", err)
		}
		return cached
	}
	pol.ID, pol.Fetched = id, now
	p.mu.Lock()
	delete(p.failedAt, domain)
	p.cache[domain] = pol
	p.mu.Unlock()
	if cached == nil || cached.ID != id || cached.Mode != pol.Mode {
		p.log.Info("Fetched an MTA-STS policy", "domain", domain, "id", id, "mode", pol.Mode, "mx", strings.Join(pol.MX, ","), "max_age", int64(pol.MaxAge/time.Second))
	}
	p.save(domain, pol, body)
	return pol
}

// cachedLocked returns domain's cached policy, dropping it when it has expired.
func (p *Policies) cachedLocked(domain string, now time.Time) *Policy {
	pol := p.cache[domain]
	if pol == nil {
		return nil
	}
	if !now.Before(pol.Expires()) {
		delete(p.cache, domain)
		p.remove(domain)
		p.log.Info("Dropped an expired MTA-STS policy", "domain", domain, "id", pol.ID)
		return nil
	}
	return pol
}

// maxFailed bounds the memory of domains whose fetch failed.
const maxFailed = 10000
