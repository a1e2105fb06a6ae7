package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrOverQuota is what a quota-checked operation returns (as a *QuotaError) when it would take a
// mailbox past its quota. Nothing was stored then.
var ErrOverQuota = errors.New("store: over quota")

// QuotaError names the mailboxes an operation would have taken past their quota.
// errors.Is(err, ErrOverQuota) holds for it.
type QuotaError struct {
	Mailboxes []string // primary addresses, lower case
	Size      int64    // the bytes the operation would have added to each
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("store: %d bytes would take %s past the quota", e.Size, strings.Join(e.Mailboxes, ", "))
}

// Is makes errors.Is(err, ErrOverQuota) true.
func (e *QuotaError) Is(target error) bool { return target == ErrOverQuota }

// Usage is what a mailbox holds, as its quota counts it: every message file in cur/ and new/ of
// every folder (not tmp/), by the size in its name or else its file size.
type Usage struct {
	Bytes    int64
	Messages int64
}

// QuotaFunc returns the quota of a mailbox (a primary address, lower case) in bytes; 0 is no
// limit.
type QuotaFunc func(mailbox string) int64

// recountInterval is how old a count may get before the next use of the mailbox counts it again,
// to pick up changes made by other processes (the 15 minutes of Maildir++'s maildirsize).
// Tests shorten it.
var recountInterval = 15 * time.Minute

// Usage returns what a mailbox holds now, counting it first on its first use since the store
// was opened (and again when the count is older than 15 minutes, or another process changed the
// mailbox, and no operation on it is under way).
func (s *Store) Usage(mailbox string) (Usage, error) {
	u, err := s.mailboxOf(mailbox)
	if err != nil {
		return Usage{}, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := s.refreshLocked(u); err != nil {
		return Usage{}, err
	}
	return u.have, nil
}

// refreshLocked counts the mailbox if it was never counted, or recounts it when the count is due
// and no operation is under way (one could have touched its files but not yet the count). A
// failed recount keeps the old figures; a first count that fails in part (an unreadable folder)
// keeps what it could read, so that delivery goes on; both are logged and retried when due.
func (s *Store) refreshLocked(u *mailbox) error {
	if u.loaded && (u.inFlight > 0 || !u.stale && time.Since(u.counted) < recountInterval) {
		return nil
	}
	got, err := countMailbox(u.dir)
	if err != nil && u.loaded {
		s.logger.Warn("Failed to recount mailbox usage; keeping the running count", "dir", u.dir, "error", err)
		u.counted, u.stale = time.Now(), false
		return nil
	}
	if err != nil {
		// Mail must keep flowing: what could be read counts, and the rest at the next recount.
		s.logger.Warn("Counted mailbox usage only in part", "dir", u.dir, "error", err)
	}
	if !u.loaded {
		s.dropMaildirsize(u.dir)
	} else if got != u.have {
		s.logger.Info("Recounted mailbox usage", "dir", u.dir, "bytes", got.Bytes, "messages", got.Messages,
			"wasBytes", u.have.Bytes, "wasMessages", u.have.Messages)
	}
	u.have, u.loaded, u.stale, u.counted = got, true, false, time.Now()
	return nil
}

// dropMaildirsize removes a Maildir++ quota file another server left behind: kubemail does not
// keep it current, and Dovecot or Courier would trust its stale sums; without it they recount.
func (s *Store) dropMaildirsize(dir string) {
	p := filepath.Join(dir, "maildirsize")
	if err := os.Remove(p); err == nil {
		s.logger.Info("Removed a maildirsize file kubemail does not keep current", "path", p)
	}
}

// markStale asks for a recount of the mailbox at its next use: a folder scan found messages that
// another process added or removed.
func (m *mailbox) markStale() {
	m.mu.Lock()
	m.stale = true
	m.mu.Unlock()
}

// charge is one operation's hold on a mailbox's count, from before it touches the files until
// after (end). It reserves the bytes the operation may add, so concurrent operations cannot pass
// the quota together.
type charge struct {
	u        *mailbox
	reserved int64
}

// beginCharge starts an operation that adds up to add bytes to the mailbox u. With quota > 0 and
// add > 0 it fails with ErrOverQuota when what the mailbox holds, plus what operations under way
// reserved, plus add, would pass quota (RFC 9208 5.1: the limit is never exceeded). It counts the
// mailbox first if needed. It fails with ErrMailboxRemoved once RemoveMailbox began removing u.
func (s *Store) beginCharge(u *mailbox, add, quota int64) (*charge, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.removed {
		return nil, ErrMailboxRemoved
	}
	if err := s.refreshLocked(u); err != nil {
		return nil, err
	}
	if quota > 0 && add > 0 && u.have.Bytes+u.reserved+add > quota {
		return nil, &QuotaError{Mailboxes: []string{u.address}, Size: add}
	}
	u.reserved += add
	u.inFlight++
	return &charge{u: u, reserved: add}, nil
}

// end finishes the operation: bytes and messages (negative for removals) are what it changed on
// disk. A failed operation passes ok false; its files may be in any state, so the mailbox is
// recounted at the next chance.
func (c *charge) end(ok bool, bytes, messages int64) {
	u := c.u
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reserved -= c.reserved
	u.doneLocked()
	u.have.Bytes += bytes
	u.have.Messages += messages
	if !ok {
		u.stale = true
	}
}

// beginCharges is beginCharge for several mailboxes at once, all or nothing: if any would pass
// its quota, none is charged and the QuotaError names every such mailbox.
func (s *Store) beginCharges(mailboxes []*mailbox, add int64, quota QuotaFunc) ([]*charge, error) {
	charges := make([]*charge, 0, len(mailboxes))
	var over []string
	for _, mb := range mailboxes {
		var limit int64
		if quota != nil {
			limit = quota(mb.address)
		}
		c, err := s.beginCharge(mb, add, limit)
		var qe *QuotaError
		switch {
		case errors.As(err, &qe):
			over = append(over, qe.Mailboxes...)
			continue
		case err != nil:
			endAll(charges, false, 0, 0)
			return nil, err
		}
		charges = append(charges, c)
	}
	if len(over) > 0 {
		endAll(charges, true, 0, 0)
		return nil, &QuotaError{Mailboxes: over, Size: add}
	}
	return charges, nil
}

func endAll(charges []*charge, ok bool, bytes, messages int64) {
	for _, c := range charges {
		c.end(ok, bytes, messages)
	}
}

// countMailbox adds up the messages of the mailbox at dir: its INBOX and every folder. A folder
// that cannot be read is left out and reported in the error, with the sum of the others.
func countMailbox(dir string) (Usage, error) {
	var total Usage
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return total, nil
	}
	if err != nil {
		return total, fmt.Errorf("store: counting mailbox: %w", err)
	}
	folders := []string{dir}
	for _, e := range entries {
		if n := e.Name(); e.IsDir() && len(n) > 1 && n[0] == '.' && n != ".." {
			folders = append(folders, filepath.Join(dir, n))
		}
	}
	var errs []error
	for _, f := range folders {
		u, err := countFolder(f)
		if err != nil {
			errs = append(errs, err)
		}
		total.Bytes += u.Bytes
		total.Messages += u.Messages
	}
	return total, errors.Join(errs...)
}

// countFolder adds up the messages of one Maildir. It reads new/ before cur/ and counts each base
// name once, so a message moved from new/ to cur/ meanwhile is counted exactly once; a directory
// whose mtime moved while it was read (a flag change renamed a file) is read again.
func countFolder(dir string) (Usage, error) {
	var total Usage
	seen := make(map[string]bool)
	for _, sub := range []string{"new", "cur"} {
		path := filepath.Join(dir, sub)
		var names []string
		for try := 0; ; try++ {
			before, err := os.Stat(path)
			if errors.Is(err, os.ErrNotExist) {
				break // not a Maildir, or deleted meanwhile
			}
			if err != nil {
				return total, fmt.Errorf("store: counting %s: %w", path, err)
			}
			if names, err = readNames(path); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					break
				}
				return total, err
			}
			after, err := os.Stat(path)
			if err != nil || after.ModTime().Equal(before.ModTime()) || try == 2 {
				break
			}
		}
		for _, n := range names {
			base, _ := splitInfo(n)
			if seen[base] {
				continue
			}
			size, ok := sizeFromName(n)
			if !ok {
				fi, err := os.Stat(filepath.Join(path, n))
				if err != nil {
					continue // gone, or moved to cur/ where it is found next
				}
				size = fi.Size()
			}
			seen[base] = true
			total.Bytes += size
			total.Messages++
		}
	}
	return total, nil
}
