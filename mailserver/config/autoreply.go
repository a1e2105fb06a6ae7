package config

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// Limits of spec.autoReply, as the CRD has them.
const (
	// DefaultAutoReplyInterval is the interval of an autoReply that sets none: 7 days, as RFC
	// 3834 2 recommends.
	DefaultAutoReplyInterval = 7 * 24 * time.Hour
	// MinAutoReplyInterval is the shortest interval allowed: one reply per sender a day at most.
	MinAutoReplyInterval = 24 * time.Hour
	// MaxAutoReplyBody and MaxAutoReplySubject are in characters.
	MaxAutoReplyBody    = 10240
	MaxAutoReplySubject = 200
)

// AutoReply is a mailbox's out-of-office reply (spec.autoReply); package autoreply sends it.
type AutoReply struct {
	// Subject of the reply; "" means "Auto: " and the subject of the message answered.
	Subject string `json:"subject,omitempty"`
	// Body is the reply's text.
	Body string `json:"body"`
	// Start and End bound when replies are sent; a zero time is no bound.
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// Interval is the least time between two replies to the same sender.
	Interval time.Duration `json:"interval"`
}

// Active reports whether replies are due at t: within [Start, End).
func (a *AutoReply) Active(t time.Time) bool {
	return (a.Start.IsZero() || !t.Before(a.Start)) && (a.End.IsZero() || t.Before(a.End))
}

// resolveAutoReply checks spec.autoReply as the CRD does; the field string names what is wrong.
func resolveAutoReply(in *v1alpha1.AutoReply) (*AutoReply, string, error) {
	if in == nil {
		return nil, "", nil
	}
	out := &AutoReply{Subject: in.Subject, Body: in.Body, Interval: DefaultAutoReplyInterval}
	switch {
	case strings.ContainsAny(in.Subject, "\r\n"):
		return nil, "spec.autoReply.subject", fmt.Errorf("must be one line")
	case utf8.RuneCountInString(in.Subject) > MaxAutoReplySubject:
		return nil, "spec.autoReply.subject", fmt.Errorf("is longer than %d characters", MaxAutoReplySubject)
	case !utf8.ValidString(in.Subject):
		return nil, "spec.autoReply.subject", fmt.Errorf("is not valid UTF-8")
	case strings.TrimSpace(in.Body) == "":
		return nil, "spec.autoReply.body", errEmpty
	case utf8.RuneCountInString(in.Body) > MaxAutoReplyBody:
		return nil, "spec.autoReply.body", fmt.Errorf("is longer than %d characters", MaxAutoReplyBody)
	case !utf8.ValidString(in.Body):
		return nil, "spec.autoReply.body", fmt.Errorf("is not valid UTF-8")
	}
	if in.Start != nil {
		out.Start = in.Start.UTC()
	}
	if in.End != nil {
		out.End = in.End.UTC()
	}
	if !out.Start.IsZero() && !out.End.IsZero() && !out.End.After(out.Start) {
		return nil, "spec.autoReply.end", fmt.Errorf("%s is not after spec.autoReply.start %s",
			out.End.Format(time.RFC3339), out.Start.Format(time.RFC3339))
	}
	if in.Interval != nil {
		if in.Interval.Duration < MinAutoReplyInterval {
			return nil, "spec.autoReply.interval", fmt.Errorf("%s is shorter than the minimum %s", in.Interval.Duration, MinAutoReplyInterval)
		}
		out.Interval = in.Interval.Duration
	}
	return out, "", nil
}
