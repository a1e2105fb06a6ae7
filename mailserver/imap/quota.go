package imap

import (
	"errors"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/store"
)

// errOverQuota is the answer to an APPEND or COPY that would take the mailbox past its quota
// (RFC 5530 3, OVERQUOTA; RFC 9208 4.2: the command fails and nothing is stored).
var errOverQuota = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota,
	Text: "Mailbox is over its quota: delete some mail and try again"}

// quota returns the logged-in mailbox's quota in bytes (0: none) from the config in force now, so
// a changed quota applies from the next command.
func (s *session) quota() int64 {
	if mb := s.srv.opts.Live.Load().Mailbox(s.acct.Address()); mb != nil {
		return mb.Quota
	}
	return 0
}

// fitsQuota tells before any byte is stored whether size more bytes would pass the quota, so an
// APPEND that cannot fit is refused without writing it; the store checks again when it commits.
func (s *session) fitsQuota(quota, size int64) bool {
	if quota <= 0 {
		return true
	}
	u, err := s.srv.opts.Store.Usage(s.acct.Address())
	return err != nil || u.Bytes+size <= quota
}

// overQuota counts and logs a refusal and returns the NO [OVERQUOTA] for command.
func (s *session) overQuota(command string, size int64) error {
	metrics.QuotaRefusals.WithLabelValues("imap", command).Inc()
	s.srv.log.Info("Refused over quota", "command", command, "mailbox", s.acct.Address(),
		"remote", s.remote.String(), "size", size)
	return errOverQuota
}

func isOverQuota(err error) bool { return errors.Is(err, store.ErrOverQuota) }
