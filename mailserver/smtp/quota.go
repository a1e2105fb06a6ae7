package smtp

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/store"
)

// quotaStore is the quota side of the store; *store.Store has it. Options.Store values without it
// (tests' stand-ins) deliver without quota checks.
type quotaStore interface {
	Usage(mailbox string) (store.Usage, error)
	DeliverWithQuota(ctx context.Context, mailboxes []string, quota store.QuotaFunc, prefix []byte, body io.Reader) (int64, error)
}

// folderStore delivers into other folders than INBOX (Junk); *store.Store has it. Options.Store
// values without it deliver everything into INBOX.
type folderStore interface {
	DeliverToFolders(ctx context.Context, targets []store.Target, quota store.QuotaFunc, prefix []byte, body io.Reader) (int64, error)
}

var (
	_ quotaStore  = (*store.Store)(nil)
	_ folderStore = (*store.Store)(nil)
)

// quotaOf returns the quota of a mailbox (primary address) in the transaction's directory.
func (tx *transaction) quotaOf(mailbox string) int64 {
	if mb := tx.dir.Lookup(mailbox); mb != nil {
		return mb.Quota
	}
	return 0
}

// checkQuota refuses a recipient whose mailbox is already full at RCPT, per recipient, so the
// sender's server delivers to the others now and retries this one (see the package doc, Quota).
// A mailbox already in the transaction (reached again by an alias) was checked.
func (s *session) checkQuota(tx *transaction, mb *config.Mailbox) (reason string, err error) {
	qs, ok := s.b.opts.Store.(quotaStore)
	if !ok || mb.Quota <= 0 || slices.Contains(tx.mailboxes, mb.Address) {
		return "", nil
	}
	if tx.size > mb.Quota {
		return "declared SIZE larger than the mailbox's quota", errLargerThanQuota
	}
	u, err := qs.Usage(mb.Address)
	if err != nil {
		// The delivery checks again; a store problem is its to report.
		s.log.Warn("Failed to read mailbox usage", "mailbox", mb.Address, "err", err)
		return "", nil
	}
	switch {
	case u.Bytes >= mb.Quota:
		return "mailbox full", errMailboxFull
	case tx.size > 0 && u.Bytes+tx.size > mb.Quota:
		// RFC 1870 6.1: the declared SIZE lets the server refuse before the data.
		return "declared SIZE would pass the mailbox's quota", errMailboxFull
	}
	return "", nil
}

// deliverLocal puts the message into the transaction's mailboxes, checking their quotas when
// the store can.
func (s *session) deliverLocal(tx *transaction, prefix []byte, src io.Reader) error {
	if fs, ok := s.b.opts.Store.(folderStore); ok {
		_, err := fs.DeliverToFolders(s.ctx, tx.targets(), tx.quotaOf, prefix, src)
		return err
	}
	if qs, ok := s.b.opts.Store.(quotaStore); ok {
		_, err := qs.DeliverWithQuota(s.ctx, tx.mailboxes, tx.quotaOf, prefix, src)
		return err
	}
	_, err := s.b.opts.Store.Deliver(s.ctx, tx.mailboxes, prefix, src)
	return err
}

// quotaReply turns a store.QuotaError at the end of the data into the transaction's reply: 552
// 5.2.3 when the message is larger than the quota of every recipient mailbox (it can never be
// delivered), else 452 4.2.2 for the whole transaction (see the package doc, Quota). It returns
// nil for other errors.
func (s *session) quotaReply(tx *transaction, err error) error {
	var qe *store.QuotaError
	if !errors.As(err, &qe) {
		return nil
	}
	rep, reason := errLargerThanQuota, "message larger than the quota of every recipient mailbox"
	for _, mb := range tx.mailboxes {
		if q := tx.quotaOf(mb); q <= 0 || qe.Size <= q {
			rep, reason = errMailboxFull, "mailbox full: "+strings.Join(qe.Mailboxes, ", ")
			break
		}
	}
	metrics.QuotaRefusals.WithLabelValues(s.b.role.String(), "DATA").Inc()
	s.logRejected("Rejected message", tx, tx.from, "", rep, reason)
	return rep
}
