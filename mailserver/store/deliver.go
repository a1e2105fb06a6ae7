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
	"time"

	"github.com/kubemail/kubemail/internal/durable"
)

// Deliver writes one copy of the message, prefix followed by body, into the INBOX (new/) of each
// mailbox address, all-or-nothing, and returns the size of one copy in bytes. When it returns nil
// every copy has been fsynced and renamed into new/, and the new/ directories fsynced; when it
// returns an error no copy is visible in any mailbox. IMAP sessions watching an INBOX that got a
// copy are notified. Safe for concurrent use.
func (s *Store) Deliver(ctx context.Context, mailboxes []string, prefix []byte, body io.Reader) (int64, error) {
	if len(mailboxes) == 0 {
		return 0, errors.New("store: deliver: no mailboxes")
	}
	var dirs, addrs []string
	seen := make(map[string]bool, len(mailboxes))
	for _, addr := range mailboxes {
		dir, err := s.mailboxDir(addr)
		if err != nil {
			return 0, err
		}
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if err := s.ensureMaildir(dir); err != nil {
			return 0, err
		}
		dirs = append(dirs, dir)
		addrs = append(addrs, strings.ToLower(addr))
	}

	base := uniqueBase(time.Now())
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
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: deliver: %w", err)
	}
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
	if err := s.syncNewDirs(dirs); err != nil {
		undo()
		return 0, err
	}
	tmps = nil
	for _, a := range addrs {
		s.notifyNewMail(a)
	}
	return size, nil
}

// syncNewDirs fsyncs the new/ directory of every mailbox dir, in parallel when there are several.
func (s *Store) syncNewDirs(dirs []string) error {
	if len(dirs) == 1 {
		return s.syncDirGrouped(filepath.Join(dirs[0], "new"))
	}
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, dir := range dirs {
		wg.Go(func() { errs[i] = s.syncDirGrouped(filepath.Join(dir, "new")) })
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
