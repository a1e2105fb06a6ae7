package imap

import (
	"sync"
	"time"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// Sessions is the registry of logged-in IMAP sessions that Revoke ends when the config put in
// force takes their access away (see Policies in the package doc). Each entry is the mailbox's
// address and the password hash the login was checked against (config.Mailbox.PasswordHash:
// a hash, never the password). One registry may serve several servers (IMAP and IMAPS share
// one server in `kubemail server`); the zero value is not usable, use NewSessions.
type Sessions struct {
	mu       sync.Mutex
	sessions map[*session]credential
}

// credential is what a session's login was checked against.
type credential struct {
	address      string
	passwordHash string
}

// NewSessions returns an empty registry, for Options.Sessions.
func NewSessions() *Sessions {
	return &Sessions{sessions: make(map[*session]credential)}
}

// byeTimeout bounds how long a revoked session's BYE may wait behind a response being written
// to a client that does not read: past it the connection is closed without the BYE.
const byeTimeout = 10 * time.Second

// Revoke ends every registered session whose mailbox d does not have, or whose password hash
// in d differs from the one its login was checked against, with an untagged BYE (RFC 9051
// 7.1.5) and the close of the connection; sessions of other mailboxes are left alone. Call it
// with the directory just put in force. It returns how many sessions it ended; the BYEs are
// written in the background, so a client that does not read cannot hold up a reload.
func (r *Sessions) Revoke(d *config.Directory) int {
	type ended struct {
		s      *session
		c      credential
		reason string
	}
	var out []ended
	r.mu.Lock()
	for s, c := range r.sessions {
		if reason := d.Revocation(c.address, c.passwordHash); reason != "" {
			delete(r.sessions, s) // a later reload must not end it twice
			out = append(out, ended{s, c, reason})
		}
	}
	r.mu.Unlock()
	for _, e := range out {
		metrics.SessionsRevoked.WithLabelValues("imap", e.reason).Inc()
		e.s.srv.log.Info("Revoked IMAP session", "mailbox", e.c.address, "remote", e.s.remote.String(), "reason", e.reason)
		go e.s.bye(byeText[e.reason])
	}
	return len(out)
}

// byeText is what a revoked client is told, by reason.
var byeText = map[string]string{
	metrics.RevokedRemoved:     "This account no longer exists here",
	metrics.RevokedCredentials: "The account's password was changed, log in again",
}

// add registers s, logged in as c.
func (r *Sessions) add(s *session, c credential) {
	r.mu.Lock()
	r.sessions[s] = c
	r.mu.Unlock()
}

// remove forgets s; removing one that is not registered is nothing.
func (r *Sessions) remove(s *session) {
	r.mu.Lock()
	delete(r.sessions, s)
	r.mu.Unlock()
}

// register records a login checked against mb in the registry (if the server has one), then
// checks mb against the config in force: a reload between the password check and the
// registration would otherwise be missed by its Revoke. Revoke runs after the new config is in
// force, so either it finds the session registered, or this check sees the new config. It
// returns the reason the login no longer holds, "" when it does.
func (s *session) register(mb *config.Mailbox) string {
	c := credential{address: mb.Address, passwordHash: mb.PasswordHash}
	reg := s.srv.opts.Sessions
	if reg != nil {
		reg.add(s, c)
	}
	reason := s.srv.opts.Live.Load().Revocation(c.address, c.passwordHash)
	if reason != "" && reg != nil {
		reg.remove(s)
	}
	return reason
}

// bye ends the session from another goroutine: imapserver.Conn.Bye writes the BYE under the
// connection's encoder lock, so it waits for a response being written and never cuts one in
// half; the timer closes the connection if that takes too long.
func (s *session) bye(text string) {
	nc := s.conn.NetConn()
	t := time.AfterFunc(byeTimeout, func() { nc.Close() })
	defer t.Stop()
	if err := s.conn.Bye(text); err != nil {
		s.srv.log.Debug("Could not write BYE to a revoked IMAP session", "remote", s.remote.String(), "error", err)
	}
}
