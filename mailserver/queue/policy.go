package queue

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy is the schedule of delivery attempts. Zero fields take the defaults.
type RetryPolicy struct {
	InitialInterval   time.Duration // wait before the first retry; 5 min
	MaxInterval       time.Duration // cap of the exponential backoff; 4 h
	Lifetime          time.Duration // how long a message is retried; 120 h
	DelayWarningAfter time.Duration // when the sender hears of a delay; 4 h; <0 never
}

// Default values of RetryPolicy.
const (
	DefaultInitialInterval   = 5 * time.Minute
	DefaultMaxInterval       = 4 * time.Hour
	DefaultLifetime          = 120 * time.Hour
	DefaultDelayWarningAfter = 4 * time.Hour
)

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.InitialInterval <= 0 {
		p.InitialInterval = DefaultInitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = DefaultMaxInterval
	}
	if p.MaxInterval < p.InitialInterval {
		p.MaxInterval = p.InitialInterval
	}
	if p.Lifetime <= 0 {
		p.Lifetime = DefaultLifetime
	}
	if p.DelayWarningAfter == 0 {
		p.DelayWarningAfter = DefaultDelayWarningAfter
	}
	return p
}

// backoff is the wait after the attempts-th attempt failed temporarily: InitialInterval doubled
// per earlier attempt, capped at MaxInterval, less up to a quarter of jitter.
func (p RetryPolicy) backoff(attempts int) time.Duration {
	d := p.InitialInterval
	for i := 1; i < attempts && d < p.MaxInterval; i++ {
		d *= 2
	}
	d = min(d, p.MaxInterval)
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

// nextAttempt is when to try again after an attempt at now, never later than the expiry.
func (p RetryPolicy) nextAttempt(arrival, now time.Time, attempts int) time.Time {
	next := now.Add(p.backoff(attempts))
	if expiry := arrival.Add(p.Lifetime); next.After(expiry) {
		next = expiry
		if next.Before(now) {
			next = now
		}
	}
	return next
}
