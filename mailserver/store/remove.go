package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
)

// RemoveMailbox removes the mailbox of address for good, with all its mail, and returns how many
// messages it held. It is for a mailbox that is no longer one (its address left the config); the
// package doc, Removing a mailbox, gives the rules. In short:
//
//   - From the moment it begins the address is tombstoned and no operation starts on the
//     mailbox: deliveries, IMAP commands and Account fail with ErrMailboxRemoved (a temporary
//     failure for a delivery). Operations already under way are waited for; they only do disk
//     work (a delivery's body is written before its operation begins), so the wait is short.
//   - <mail>/<domain>/<local> is then renamed into trashDir (created if needed; it must be on the
//     same file system), and both parent directories are fsynced: a crash leaves either the
//     whole mailbox in place or the whole of it in the trash, which the caller empties at its
//     next start.
//   - In the same step the store forgets the mailbox: its loaded folders are marked gone (their
//     IMAP sessions get NO [NONEXISTENT]), its quota count and the directories it knew made are
//     dropped.
//   - Finally the trash copy is removed.
//   - The tombstone stays: nothing makes the Maildir again, however late an operation that
//     began before the removal tries (a login checked against an older config, an SMTP
//     transaction accepted before it), until ReviveMailboxes names the address once it is a
//     mailbox again; the next use then starts a new, empty mailbox.
//
// A mailbox that is not on disk is nothing to remove: 0 messages and nil, the store's memory of
// it dropped and the address tombstoned all the same. If the rename fails, the mailbox is left as
// it was and in use again, and the address tombstoned only if it was before.
func (s *Store) RemoveMailbox(address, trashDir string) (messages int, err error) {
	dir, err := s.mailboxDir(address)
	if err != nil {
		return 0, err
	}
	address = strings.ToLower(address)
	s.removeMu.Lock()
	defer s.removeMu.Unlock()

	// 1. Tombstone the address and end the life together, under s.mboxMu, which every
	// operation that may make the Maildir takes to check both (enterMailbox, openMailbox): it
	// started before and is waited for (a delivery) or holds s.mu, which step 2 waits for (an
	// Account), or it is refused. Then wait for those under way.
	s.mboxMu.Lock()
	_, wasTomb := s.tombs[dir]
	s.tombs[dir] = struct{}{}
	mb := s.mailboxAtLocked(dir, address)
	mb.mu.Lock()
	mb.removed = true
	s.mboxMu.Unlock()
	for mb.inFlight > 0 {
		mb.idle.Wait()
	}
	mb.mu.Unlock()
	failed := func() {
		s.mboxMu.Lock()
		if !wasTomb {
			delete(s.tombs, dir)
		}
		s.mboxMu.Unlock()
		mb.reopen()
	}

	if err := mkdirDurable(trashDir); err != nil {
		failed()
		return 0, err
	}
	aside := filepath.Join(trashDir, address+"."+uniqueBase(time.Now()))

	// 2. Move it away and forget it, under s.mu (Account methods hold it) and the lock of every
	// loaded folder (folder methods hold theirs), so none of them is half done.
	s.mu.Lock()
	var keys []folderKey
	for k, f := range s.folders {
		if k.address == address {
			keys = append(keys, k)
			f.mu.Lock()
		}
	}
	err = os.Rename(dir, aside)
	moved := err == nil
	forget := moved || errors.Is(err, fs.ErrNotExist)
	for _, k := range keys {
		f := s.folders[k]
		if forget {
			f.gone = true
			delete(s.folders, k)
		}
		f.mu.Unlock()
	}
	if forget {
		s.forgetLife(mb, aside)
	}
	s.mu.Unlock()
	if !forget {
		failed()
		return 0, fmt.Errorf("store: removing mailbox %s: moving it into the trash: %w", address, err)
	}
	if !moved {
		return 0, nil
	}

	// 3. Make the move durable before removing anything: a crash must never leave half a
	// mailbox where the mailbox was.
	for _, d := range []string{filepath.Dir(dir), trashDir} {
		if err := durable.SyncDir(d); err != nil {
			return 0, fmt.Errorf("store: removing mailbox %s (its mail is in %s): %w", address, aside, err)
		}
	}
	held, _ := countMailbox(aside)
	if err := os.RemoveAll(aside); err != nil {
		return int(held.Messages), fmt.Errorf("store: removing mailbox %s (its mail is in %s): %w", address, aside, err)
	}
	return int(held.Messages), durable.SyncDir(trashDir)
}

// forgetLife drops what the store keeps of the life mb, whose Maildir is gone (moved to aside,
// or missing): the directories it knew exist, their shared fsyncs, and the life itself, so the
// next use of the address starts a new one. s.mu is held.
func (s *Store) forgetLife(mb *mailbox, aside string) {
	s.forgetMaildir(mb.dir)
	subs := []string{""}
	if entries, err := os.ReadDir(aside); err == nil {
		for _, e := range entries {
			if n := e.Name(); e.IsDir() && len(n) > 1 && n[0] == '.' && n != ".." {
				subs = append(subs, n)
			}
		}
	}
	for _, sub := range subs {
		s.dirSyncs.Forget(filepath.Join(mb.dir, sub, "new"))
		s.dirSyncs.Forget(filepath.Join(mb.dir, sub, "cur"))
	}
	s.mboxMu.Lock()
	if s.mboxes[mb.dir] == mb {
		delete(s.mboxes, mb.dir)
	}
	s.mboxMu.Unlock()
}

// reopen undoes the start of a RemoveMailbox that failed before the mailbox was moved.
func (m *mailbox) reopen() {
	m.mu.Lock()
	m.removed = false
	m.mu.Unlock()
}

// ReviveMailboxes lifts the tombstone RemoveMailbox left on each of addresses, so that the next
// use of the address starts a new, empty mailbox. Call it with the addresses that are mailboxes
// (again) in the config in force; an address that is not tombstoned is left as it is. It waits
// for a RemoveMailbox under way.
func (s *Store) ReviveMailboxes(addresses []string) {
	s.removeMu.Lock()
	defer s.removeMu.Unlock()
	s.mboxMu.Lock()
	defer s.mboxMu.Unlock()
	if len(s.tombs) == 0 {
		return
	}
	for _, addr := range addresses {
		dir, err := s.mailboxDir(addr)
		if err != nil {
			continue // no mailbox can have it, so no tombstone either
		}
		if _, ok := s.tombs[dir]; ok {
			delete(s.tombs, dir)
			s.logger.Info("Revived a removed mailbox address", "mailbox", strings.ToLower(addr))
		}
	}
}
