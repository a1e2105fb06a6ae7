package smtp

// Sending rate limit on submission (RelayPolicy spec.rateLimit.messagesPerMinutePerSender).
//
// Policy: each authenticated user has a token bucket holding up to N tokens, refilled at N a
// minute, where N is the smallest messagesPerMinutePerSender of the RelayPolicies that apply to
// the sender address of MAIL (a policy applies to the senders in its domains; one without
// domains to every sender); no such policy, no limit. A MAIL takes one token after the sender
// has passed the ownership check, so a user may send a burst of N messages and then N a minute;
// like Postfix's smtpd_client_message_rate_limit it counts MAIL commands, delivered or not. The
// buckets are keyed by the user's primary address, so aliases share their mailbox's bucket, and
// they are shared by every submission server on the same config.Live (587 and 465).
//
// Past the limit MAIL gets 450 4.7.1: RFC 5321 4.2.2's 450 is "mailbox unavailable (e.g. ...
// temporarily blocked for policy reasons)", a temporary refusal the user agent may retry, and
// RFC 3463 X.7.1 is "delivery not authorized, message refused" in the security or policy class.
//
// Memory: a bucket is full again at most a minute after its last use, and a full bucket is the
// same as none, so buckets unused for a minute are dropped (swept at most once a minute). What
// stays is one small bucket per user who sent in the last two minutes, and users are mailboxes
// of the config, never client input. Trusted networks (no AUTH) are not limited.

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/config"
)

// errRateLimited: RFC 5321 4.2.2 450 (temporarily blocked for policy reasons), RFC 3463 X.7.1.
var errRateLimited = reply(450, gosmtp.EnhancedCode{4, 7, 1}, "Sending rate limit exceeded, try again later")

// sendingLimit is the messages a minute allowed for sender by dir's RelayPolicies; 0 means none.
func sendingLimit(dir *config.Directory, sender string) int {
	_, domain, _ := config.SplitAddress(sender)
	limit := 0
	for _, p := range dir.Config().RelayPolicies {
		n := p.MessagesPerMinutePerSender
		if n <= 0 || len(p.Domains) > 0 && !containsFold(p.Domains, domain) {
			continue
		}
		if limit == 0 || n < limit {
			limit = n
		}
	}
	return limit
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// rateLimiter is the token buckets of the users of one config.Live.
type rateLimiter struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	now       func() time.Time
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time // when tokens was computed
}

// refillTime is how long an empty bucket takes to fill, whatever its size.
const refillTime = time.Minute

func newRateLimiter() *rateLimiter {
	return &rateLimiter{buckets: map[string]*bucket{}, now: time.Now}
}

// allow takes a token of user's bucket of size perMinute, if there is one.
func (l *rateLimiter) allow(user string, perMinute int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.lastSweep) >= refillTime {
		l.lastSweep = now
		for u, b := range l.buckets {
			if now.Sub(b.last) >= refillTime {
				delete(l.buckets, u)
			}
		}
	}
	size := float64(perMinute)
	b := l.buckets[user]
	if b == nil {
		b = &bucket{tokens: size, last: now}
		l.buckets[user] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens += size * elapsed.Seconds() / refillTime.Seconds()
	}
	b.tokens = min(b.tokens, size) // also when a reload lowered the limit
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// limiters holds the rateLimiter of each config.Live, so the 587 and 465 servers built on the
// same Live share buckets. The keys are weak: a Live no longer used (a test's) takes its
// limiter with it.
var limiters sync.Map // weak.Pointer[config.Live] -> *rateLimiter

func limiterFor(live *config.Live) *rateLimiter {
	key := weak.Make(live)
	if l, ok := limiters.Load(key); ok {
		return l.(*rateLimiter)
	}
	l, loaded := limiters.LoadOrStore(key, newRateLimiter())
	if !loaded {
		runtime.AddCleanup(live, func(k weak.Pointer[config.Live]) { limiters.Delete(k) }, key)
	}
	return l.(*rateLimiter)
}

// checkRate applies the sending limit to a MAIL of user's as from; nil if it may go on.
func (s *submissionSession) checkRate(tx *transaction, user *config.Mailbox, from string) error {
	limit := sendingLimit(tx.dir, from)
	if limit == 0 || limiterFor(s.b.opts.Live).allow(user.Address, limit) {
		return nil
	}
	s.logRejected("Rejected sender", tx, from, "", errRateLimited,
		"sending rate limit of "+strconv.Itoa(limit)+" messages a minute reached by "+user.Address)
	return errRateLimited
}
