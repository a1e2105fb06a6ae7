package auth

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/kubemail/kubemail/mailserver/config"
)

// ErrInvalidCredentials is the one answer to a wrong user name or password: the client learns
// nothing about which was wrong.
var ErrInvalidCredentials = errors.New("invalid credentials")

// Authenticator checks logins against the mailboxes of the live config and slows down clients
// that keep failing: each failed attempt from an address waits FailureDelay, doubled for every
// earlier failure from that address within the last FailureWindow, up to MaxFailureDelay.
type Authenticator struct {
	live *config.Live

	FailureDelay    time.Duration
	MaxFailureDelay time.Duration
	FailureWindow   time.Duration

	mu       sync.Mutex
	failures map[netip.Addr]*failureRecord
	dummy    string // hash checked for unknown users, so they take as long as known ones
}

type failureRecord struct {
	count int
	last  time.Time
}

// maxTrackedClients bounds the failure table: past it, the oldest records are forgotten first.
const maxTrackedClients = 100_000

// NewAuthenticator returns an Authenticator over the mailboxes of live.
func NewAuthenticator(live *config.Live) *Authenticator {
	dummy, _ := Hash("kubemail timing equaliser")
	return &Authenticator{
		live:            live,
		FailureDelay:    time.Second,
		MaxFailureDelay: 16 * time.Second,
		FailureWindow:   15 * time.Minute,
		failures:        make(map[netip.Addr]*failureRecord),
		dummy:           dummy,
	}
}

// Authenticate returns the mailbox whose primary address is username (any case) if password
// matches its hash. remote is the client's address, used to slow down repeated failures; a
// failure returns ErrInvalidCredentials after the delay, or ctx's error if ctx ends first.
func (a *Authenticator) Authenticate(ctx context.Context, remote net.Addr, username, password string) (*config.Mailbox, error) {
	mb := a.live.Load().Mailbox(username)
	hash := a.dummy
	if mb != nil {
		hash = mb.PasswordHash
	}
	if Verify(hash, password) && mb != nil {
		return mb, nil
	}
	delay := a.recordFailure(clientAddr(remote), time.Now())
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil, ErrInvalidCredentials
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *Authenticator) recordFailure(ip netip.Addr, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.failures[ip]
	if rec == nil || now.Sub(rec.last) > a.FailureWindow {
		if len(a.failures) >= maxTrackedClients {
			a.forgetOldest(now)
		}
		rec = &failureRecord{}
		a.failures[ip] = rec
	}
	rec.count++
	rec.last = now
	delay := a.FailureDelay
	for i := 1; i < rec.count && delay < a.MaxFailureDelay; i++ {
		delay *= 2
	}
	return min(delay, a.MaxFailureDelay)
}

// forgetOldest drops expired records, and if none had expired, every record older than the
// mean age, so a flood of addresses cannot grow the table without bound.
func (a *Authenticator) forgetOldest(now time.Time) {
	for ip, rec := range a.failures {
		if now.Sub(rec.last) > a.FailureWindow {
			delete(a.failures, ip)
		}
	}
	if len(a.failures) < maxTrackedClients {
		return
	}
	var total time.Duration
	for _, rec := range a.failures {
		total += now.Sub(rec.last)
	}
	mean := total / time.Duration(len(a.failures))
	for ip, rec := range a.failures {
		if now.Sub(rec.last) >= mean {
			delete(a.failures, ip)
		}
	}
}

func clientAddr(remote net.Addr) netip.Addr {
	if remote == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		// One client usually holds a whole /64.
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}
