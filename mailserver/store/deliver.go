package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
)

// anonymousFiles says whether Deliver writes each message as a file without a name (O_TMPFILE)
// that appears in new/ only once complete and durable, one link per mailbox; where that is not
// supported it falls back to the Maildir tmp/ and rename. The anonymous file saves a directory
// entry in tmp/ and its removal per message (journal work that concurrent fsyncs wait on) and
// leaves nothing behind after a crash; in paired runs of 10 KiB deliveries on ext4 here it was
// ahead in most (up to 1.7x at 10 writers), though the machine was too loaded for one figure.
// Tests switch it off to cover the fallback.
var anonymousFiles = true

// Deliver writes one copy of the message, prefix followed by body, into the INBOX (new/) of each
// mailbox address, all-or-nothing, and returns the size of one copy in bytes. When it returns nil
// every copy has been fsynced and renamed into new/, and the new/ directories fsynced; when it
// returns an error no copy is visible in any mailbox. IMAP sessions watching an INBOX that got a
// copy are notified. Safe for concurrent use. It fails with ErrMailboxRemoved, storing nothing,
// when one of the addresses is tombstoned (RemoveMailbox removed it and no ReviveMailboxes
// revived it) or RemoveMailbox removes one of the mailboxes before the copies are made (see the
// package doc).
//
// Deliver does not check quotas (the copies count towards them): it is for mail the server owes
// the user whatever the quota, such as delivery status notices. DeliverWithQuota checks them.
func (s *Store) Deliver(ctx context.Context, mailboxes []string, prefix []byte, body io.Reader) (int64, error) {
	return s.deliver(ctx, inboxes(mailboxes), nil, prefix, body)
}

// DeliverWithQuota is Deliver that also refuses the message, for every mailbox, when it would take
// any of them past its quota (quota(mailbox) bytes, 0 for none): it then returns a *QuotaError
// naming those mailboxes (errors.Is ErrOverQuota), and no copy is anywhere. The body is read in
// full first, so the size checked is the size stored.
func (s *Store) DeliverWithQuota(ctx context.Context, mailboxes []string, quota QuotaFunc, prefix []byte, body io.Reader) (int64, error) {
	return s.DeliverToFolders(ctx, inboxes(mailboxes), quota, prefix, body)
}

// Target is one copy of a delivery: the mailbox (primary address) and the folder it goes
// into, by IMAP name ("" is INBOX).
type Target struct {
	Mailbox string
	Folder  string
}

func inboxes(mailboxes []string) []Target {
	ts := make([]Target, len(mailboxes))
	for i, mb := range mailboxes {
		ts[i] = Target{Mailbox: mb}
	}
	return ts
}

// DeliverToFolders is DeliverWithQuota with a folder per mailbox, such as Junk for mail the
// MX judged suspicious. A folder other than INBOX that does not exist is made first (with the
// mailbox's special-use folders if the mailbox is new) and subscribed, as Dovecot's LDA does
// with lda_mailbox_autocreate and autosubscribe. A mailbox named twice gets one copy, in the
// first target's folder. quota nil checks no quota.
func (s *Store) DeliverToFolders(ctx context.Context, targets []Target, quota QuotaFunc, prefix []byte, body io.Reader) (int64, error) {
	if quota == nil {
		quota = func(string) int64 { return 0 }
	}
	return s.deliver(ctx, targets, quota, prefix, body)
}

func (s *Store) deliver(ctx context.Context, targets []Target, quota QuotaFunc, prefix []byte, body io.Reader) (int64, error) {
	if len(targets) == 0 {
		return 0, errors.New("store: deliver: no mailboxes")
	}
	var dirs []string      // the folders' Maildirs the copies go into
	var copies []folderKey // which folder of which mailbox, for the notifications
	var mbs []*mailbox     // the lives the copies go into (see RemoveMailbox)
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		addr := t.Mailbox
		dir, err := s.mailboxDir(addr)
		if err != nil {
			return 0, err
		}
		if seen[dir] {
			continue
		}
		seen[dir] = true
		folder, folderDir := "INBOX", dir
		if t.Folder != "" && t.Folder != "INBOX" {
			if folder, folderDir, err = s.ensureFolder(addr, t.Folder); err != nil {
				return 0, err
			}
		}
		mb, err := s.enterMailbox(dir, strings.ToLower(addr))
		if err != nil {
			return 0, err
		}
		err = s.ensureMaildir(folderDir)
		mb.leave()
		if err != nil {
			return 0, err
		}
		dirs = append(dirs, folderDir)
		copies = append(copies, folderKey{address: mb.address, name: folder})
		mbs = append(mbs, mb)
	}

	// The body is written with no charge held: it may take as long as the client takes to send
	// it. If RemoveMailbox ends a mailbox's life meanwhile, the charges below are refused.
	base := uniqueBase(time.Now())
	if !anonymousFiles {
		return s.deliverNamed(ctx, dirs, copies, mbs, quota, base, prefix, body)
	}
	f, size, err := durable.WriteAnonymous(filepath.Join(dirs[0], "tmp"), 0o600, prefix, body)
	if errors.Is(err, durable.ErrUnsupported) {
		return s.deliverNamed(ctx, dirs, copies, mbs, quota, base, prefix, body)
	}
	if err != nil {
		return 0, removedOr(mbs, fmt.Errorf("store: deliver: %w", err))
	}
	defer f.Close()
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: deliver: %w", err)
	}
	charges, err := s.beginCharges(mbs, size, quota)
	if err != nil {
		return 0, err // a *QuotaError, ErrMailboxRemoved, or the count failed
	}
	name := withSize(base, size)
	var finals []string
	undo := func() {
		for _, p := range finals {
			os.Remove(p)
		}
	}
	for _, dir := range dirs {
		final := filepath.Join(dir, "new", name)
		err := durable.Link(f, final)
		if errors.Is(err, syscall.EXDEV) {
			err = copyInto(f, final, size)
		}
		if err != nil {
			undo()
			endAll(charges, false, 0, 0)
			return 0, fmt.Errorf("store: deliver: %w", err)
		}
		finals = append(finals, final)
	}
	if err := s.publish(dirs, copies, undo); err != nil {
		endAll(charges, false, 0, 0)
		return 0, err
	}
	endAll(charges, true, size, 1)
	return size, nil
}

// publish makes the new entries durable and tells IMAP sessions, or calls undo on failure.
func (s *Store) publish(dirs []string, copies []folderKey, undo func()) error {
	if err := s.syncNewDirs(dirs); err != nil {
		undo()
		return err
	}
	for _, c := range copies {
		s.notifyNewMail(c)
	}
	return nil
}

// deliverNamed is Deliver where files without a name cannot be made (NFS, non-Linux): the
// Maildir way, tmp/ then rename into new/, hard links for the other mailboxes.
func (s *Store) deliverNamed(ctx context.Context, dirs []string, copies []folderKey, mbs []*mailbox, quota QuotaFunc, base string, prefix []byte, body io.Reader) (int64, error) {
	var tmps []string // tmp files made so far; removed on every return path
	defer func() {
		for _, t := range tmps {
			os.Remove(t)
		}
	}()
	first := filepath.Join(dirs[0], "tmp", base)
	tmps = append(tmps, first)
	size, err := durable.WriteNew(first, 0o600, prefix, body)
	if err != nil {
		return 0, removedOr(mbs, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: deliver: %w", err)
	}
	charges, err := s.beginCharges(mbs, size, quota)
	if err != nil {
		return 0, err // a *QuotaError, ErrMailboxRemoved, or the count failed
	}
	ok := false
	defer func() {
		if !ok {
			endAll(charges, false, 0, 0)
		}
	}()
	for _, dir := range dirs[1:] {
		t := filepath.Join(dir, "tmp", base)
		tmps = append(tmps, t)
		if err := os.Link(first, t); err != nil {
			if err := copyFileSynced(first, t); err != nil {
				return 0, err
			}
		}
	}
	name := withSize(base, size)
	var finals []string
	undo := func() {
		for _, f := range finals {
			os.Remove(f)
		}
	}
	for i, dir := range dirs {
		final := filepath.Join(dir, "new", name)
		if err := os.Rename(tmps[i], final); err != nil {
			undo()
			return 0, fmt.Errorf("store: deliver: moving into new/: %w", err)
		}
		finals = append(finals, final)
	}
	if err := s.publish(dirs, copies, undo); err != nil {
		return 0, err
	}
	tmps, ok = nil, true
	endAll(charges, true, size, 1)
	return size, nil
}

// copyInto copies the anonymous file f into a new file at final (on another file system).
func copyInto(f *os.File, final string, size int64) error {
	tmp := filepath.Join(filepath.Dir(filepath.Dir(final)), "tmp", filepath.Base(final))
	if _, err := durable.WriteNew(tmp, 0o600, nil, io.NewSectionReader(f, 0, size)); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// syncNewDirs fsyncs the new/ directory of every mailbox dir, in parallel when there are several.
func (s *Store) syncNewDirs(dirs []string) error {
	if len(dirs) == 1 {
		return s.dirSyncs.SyncDir(filepath.Join(dirs[0], "new"))
	}
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, dir := range dirs {
		wg.Go(func() { errs[i] = s.dirSyncs.SyncDir(filepath.Join(dir, "new")) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// copyFileSynced copies src into a new file dst and fsyncs it.
func copyFileSynced(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("store: copying %s: %w", src, err)
	}
	defer in.Close()
	_, err = durable.WriteNew(dst, 0o600, nil, in)
	return err
}
