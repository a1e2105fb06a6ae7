package msgauth

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/authres"
)

// maxIPRevNames is how many PTR names of one address are looked up forward (as RFC 7208 4.6.4
// bounds the names of its ptr mechanism).
const maxIPRevNames = 10

// IPRevCheck is the iprev check (RFC 8601 2.7.3, "forward-confirmed reverse DNS") of a client
// address, running in the background from the first MAIL of a connection on.
type IPRevCheck struct {
	done   chan struct{}
	cancel context.CancelFunc
	IP     netip.Addr
	// Result is pass (a PTR name of IP has IP among its addresses), fail (no PTR record, or
	// none of its names maps back) or temperror (a lookup failed and nothing passed).
	Result authres.ResultValue
	Name   string // the name that mapped back, for pass
	Reason string // why, for fail and temperror
}

// iprevReuse is how long the result of an address's check serves new connections from it: a
// busy sender opens many connections a minute, and each check is a PTR and one or more address
// lookups (cheap from the DNS cache, but not free: the bench's one connection per message spent
// a third of its throughput on them). A temperror result is not reused.
const iprevReuse = time.Minute

// maxIPRevCache bounds the addresses whose results are kept; when full, it starts over.
const maxIPRevCache = 10000

type iprevCache struct {
	mu      sync.Mutex
	entries map[netip.Addr]iprevEntry
}

type iprevEntry struct {
	check   *IPRevCheck
	expires time.Time
}

// StartIPRev begins the iprev check of ip and returns at once; Verify waits for it. A check of
// the same address begun within the last minute (still running, or finished other than with
// temperror) is shared instead; so the check runs on its own context, bounded by the
// Verifier's timeout, not on ctx.
func (v *Verifier) StartIPRev(ctx context.Context, ip netip.Addr) *IPRevCheck {
	ip = ip.Unmap()
	now := time.Now()
	v.iprevs.mu.Lock()
	defer v.iprevs.mu.Unlock()
	if e, ok := v.iprevs.entries[ip]; ok && now.Before(e.expires) && !e.check.failedTemporarily() {
		return e.check
	}
	if v.iprevs.entries == nil || len(v.iprevs.entries) >= maxIPRevCache {
		v.iprevs.entries = map[netip.Addr]iprevEntry{}
	}
	c := v.startIPRev(ip)
	v.iprevs.entries[ip] = iprevEntry{check: c, expires: now.Add(iprevReuse)}
	return c
}

// failedTemporarily reports whether the check is over with temperror.
func (c *IPRevCheck) failedTemporarily() bool {
	select {
	case <-c.done:
		return c.Result == authres.ResultTempError
	default:
		return false
	}
}

func (v *Verifier) startIPRev(ip netip.Addr) *IPRevCheck {
	ctx, cancel := context.WithTimeout(context.Background(), v.timeout())
	c := &IPRevCheck{done: make(chan struct{}), cancel: cancel, IP: ip}
	go func() {
		defer cancel()
		defer close(c.done)
		defer func() {
			if p := recover(); p != nil {
				v.log().Error("Recovered from a panic in the iprev check", "ip", c.IP, "panic", p)
				c.Result, c.Reason = authres.ResultTempError, "internal error"
			}
		}()
		c.Result, c.Name, c.Reason = v.iprev(ctx, c.IP)
	}()
	return c
}

// wait waits for the check, or until ctx ends; the result is then temperror for this message
// (the check goes on for the others that share it).
func (c *IPRevCheck) wait(ctx context.Context) *IPRevCheck {
	select {
	case <-c.done:
		return c
	case <-ctx.Done():
		return &IPRevCheck{IP: c.IP, Result: authres.ResultTempError, Reason: "DNS lookup timed out"}
	}
}

// iprev looks up the PTR names of ip, then the A and AAAA records of each (at most 10): pass
// when one of them is ip (RFC 8601 2.7.3).
func (v *Verifier) iprev(ctx context.Context, ip netip.Addr) (result authres.ResultValue, name, reason string) {
	r := v.resolver()
	names, err := r.LookupAddr(ctx, ip.String())
	var dnsErr *net.DNSError
	switch {
	case len(names) > 0:
		// Go's resolver drops malformed names and reports them as an error; the rest count.
	case err == nil || errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return authres.ResultFail, "", "no PTR record"
	default:
		v.log().Info("Failed looking up a PTR record", "ip", ip, "err", err)
		return authres.ResultTempError, "", "DNS lookup failed"
	}
	temp := false
	for i, n := range names {
		if i == maxIPRevNames {
			break
		}
		addrs, err := r.LookupNetIP(ctx, "ip", strings.TrimSuffix(n, ".")+".")
		if err != nil {
			if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
				temp = true
			}
			continue
		}
		for _, a := range addrs {
			if a.Unmap() == ip {
				return authres.ResultPass, strings.TrimSuffix(n, "."), ""
			}
		}
	}
	if temp {
		return authres.ResultTempError, "", "DNS lookup failed"
	}
	return authres.ResultFail, "", "no PTR name maps back to the address"
}
