package config

import "sync/atomic"

// Live holds the directory in force. A reload swaps it atomically; each SMTP transaction or IMAP
// command takes the current one with Load and keeps using it to the end.
type Live struct {
	p atomic.Pointer[Directory]
}

// NewLive returns a Live holding d.
func NewLive(d *Directory) *Live {
	l := &Live{}
	l.p.Store(d)
	return l
}

// Load returns the directory in force.
func (l *Live) Load() *Directory { return l.p.Load() }

// Store puts d in force.
func (l *Live) Store(d *Directory) { l.p.Store(d) }
