package store

import (
	"strings"
	"sync"
	"time"
)

// ErrMailboxRemoved is returned by an operation on a mailbox that RemoveMailbox has removed or
// is removing, and by one that would have started while it runs; and by Account, Deliver and
// DeliverWithQuota for an address RemoveMailbox left tombstoned, until ReviveMailboxes lifts the
// tombstone (see the package doc, Removing a mailbox). errors.Is(err, ErrFolderGone) holds for
// it too: to an IMAP session every folder of the mailbox is gone. For a delivery it is a
// temporary failure: the sender retries, and by then the address either is no mailbox any more
// or is a new one.
var ErrMailboxRemoved error = mailboxRemovedError{}

type mailboxRemovedError struct{}

func (mailboxRemovedError) Error() string        { return "store: the mailbox was removed" }
func (mailboxRemovedError) Is(target error) bool { return target == ErrFolderGone }

// mailbox is one life of a mailbox in the store: from its first use after Open, or after the
// RemoveMailbox that ended the previous life (and the ReviveMailboxes that lifted its
// tombstone), until RemoveMailbox. Accounts, Folders and
// deliveries keep the life they started in, so nothing they do after its end reaches a later
// life's directory: they fail with ErrMailboxRemoved instead. It holds the running quota count
// (see quota.go) and counts the operations under way, which RemoveMailbox waits for.
type mailbox struct {
	dir     string
	address string // primary address, lower case

	mu       sync.Mutex // a leaf lock: nothing else is locked while it is held
	removed  bool       // RemoveMailbox began: no operation starts any more
	idle     sync.Cond  // on mu; broadcast when inFlight drops to 0
	inFlight int        // operations under way: charges, and enter to leave

	// The running count (quota.go).
	loaded   bool
	counted  time.Time // when the mailbox was last counted
	stale    bool      // another process changed it (seen by a folder scan), or an operation failed
	have     Usage
	reserved int64 // bytes charged by operations under way, not yet in have
}

// mailboxAtLocked returns the current life of the mailbox at dir, starting one if needed.
// s.mboxMu is held.
func (s *Store) mailboxAtLocked(dir, address string) *mailbox {
	m := s.mboxes[dir]
	if m == nil {
		m = &mailbox{dir: dir, address: address}
		m.idle.L = &m.mu
		s.mboxes[dir] = m
	}
	return m
}

// mailboxAt is mailboxAtLocked taking the lock.
func (s *Store) mailboxAt(dir, address string) *mailbox {
	s.mboxMu.Lock()
	defer s.mboxMu.Unlock()
	return s.mailboxAtLocked(dir, address)
}

// mailboxOf returns the current life of the mailbox of address.
func (s *Store) mailboxOf(address string) (*mailbox, error) {
	dir, err := s.mailboxDir(address)
	if err != nil {
		return nil, err
	}
	return s.mailboxAt(dir, strings.ToLower(address)), nil
}

// enterMailbox starts an operation that may make the Maildir of the mailbox at dir (call leave
// when done), in its current life. It fails with ErrMailboxRemoved while the address is
// tombstoned or RemoveMailbox is removing it.
func (s *Store) enterMailbox(dir, address string) (*mailbox, error) {
	s.mboxMu.Lock()
	defer s.mboxMu.Unlock()
	m, err := s.usableLocked(dir, address)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.removed {
		return nil, ErrMailboxRemoved
	}
	m.inFlight++
	return m, nil
}

// openMailbox returns the current life of the mailbox at dir for Account, which holds s.mu
// while it makes the Maildir. It fails with ErrMailboxRemoved while the address is tombstoned
// or RemoveMailbox is removing it; RemoveMailbox marks both before it takes s.mu to move the
// Maildir away, so whatever Account makes after this check goes with the rest.
func (s *Store) openMailbox(dir, address string) (*mailbox, error) {
	s.mboxMu.Lock()
	defer s.mboxMu.Unlock()
	m, err := s.usableLocked(dir, address)
	if err != nil {
		return nil, err
	}
	if m.isRemoved() {
		return nil, ErrMailboxRemoved
	}
	return m, nil
}

// usableLocked returns the current life of the mailbox at dir, starting one if needed, unless
// the address is tombstoned (ErrMailboxRemoved). s.mboxMu is held.
func (s *Store) usableLocked(dir, address string) (*mailbox, error) {
	if _, ok := s.tombs[dir]; ok {
		return nil, ErrMailboxRemoved
	}
	return s.mailboxAtLocked(dir, address), nil
}

// leave ends an operation started by enterMailbox.
func (m *mailbox) leave() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.doneLocked()
}

// doneLocked ends one operation under way and wakes a RemoveMailbox waiting for the last.
func (m *mailbox) doneLocked() {
	m.inFlight--
	if m.inFlight == 0 {
		m.idle.Broadcast()
	}
}

// isRemoved says whether RemoveMailbox has begun removing this life of the mailbox.
func (m *mailbox) isRemoved() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.removed
}

// removedOr returns ErrMailboxRemoved if one of mbs was removed (err then comes from its
// directory having gone), else err.
func removedOr(mbs []*mailbox, err error) error {
	for _, m := range mbs {
		if m.isRemoved() {
			return ErrMailboxRemoved
		}
	}
	return err
}
