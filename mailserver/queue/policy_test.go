package queue

import (
	"testing"
	"time"
)

func TestDefaultBackoffIsPostfixLike(t *testing.T) {
	p := RetryPolicy{}.withDefaults()
	if p.InitialInterval != 5*time.Minute || p.MaxInterval != 4*time.Hour || p.Lifetime != 120*time.Hour || p.DelayWarningAfter != 4*time.Hour {
		t.Fatalf("defaults %+v", p)
	}
	// Attempt n waits 5 min·2^(n-1), capped at 4 h, less up to a quarter of jitter.
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute, 160 * time.Minute, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour}
	for i, w := range want {
		for range 100 {
			d := p.backoff(i + 1)
			if d > w || d < w*3/4 {
				t.Fatalf("backoff after attempt %d = %v, want within [%v, %v]", i+1, d, w*3/4, w)
			}
		}
	}
	if d := p.backoff(1000); d > 4*time.Hour || d < 3*time.Hour {
		t.Errorf("backoff after 1000 attempts = %v", d)
	}
}

func TestNextAttemptNeverPassesTheExpiry(t *testing.T) {
	p := RetryPolicy{InitialInterval: time.Hour, Lifetime: 90 * time.Minute}.withDefaults()
	arrival := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	now := arrival.Add(80 * time.Minute)
	if next := p.nextAttempt(arrival, now, 3); !next.Equal(arrival.Add(p.Lifetime)) {
		t.Errorf("next attempt %v, want the expiry %v", next, arrival.Add(p.Lifetime))
	}
	late := arrival.Add(2 * time.Hour)
	if next := p.nextAttempt(arrival, late, 3); !next.Equal(late) {
		t.Errorf("past the expiry the next attempt is %v, want now", next)
	}
}

func TestIDsSortByArrival(t *testing.T) {
	a := newID(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	b := newID(time.Date(2026, 11, 26, 10, 0, 0, 1000, time.UTC))
	if !(a < b) || !validID(a) || !validID(b) {
		t.Errorf("ids %s, %s", a, b)
	}
}
