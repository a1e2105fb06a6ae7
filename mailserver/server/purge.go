package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
	"github.com/kubemail/kubemail/mailserver/config"
)

// trashDir is where a purged Maildir is moved, under the data dir, before it is removed.
const trashDir = "trash"

// purger removes the Maildirs that a config lists in Purge (config.PurgeAnnotation): the mail of
// Mailboxes deleted with spec.reclaimPolicy: Delete. Mail must never be lost by accident, so:
//
//   - only listed addresses are touched, and never one that is a mailbox of the config in force;
//   - <data>/mail/<domain>/<local> is first renamed into <data>/trash/ (one atomic rename on the
//     same file system, both directories fsynced), then removed: a crash in between leaves no
//     half-removed mailbox, only a trash entry that the next start removes;
//   - an address that was a mailbox of this running server is purged at its next start, not
//     now: the mailbox store keeps what it learnt of an open mailbox (its directories, its
//     folders' state) for the life of the process, and a Mailbox re-created with the same
//     address before a restart would find that state stale. Until then the mail stays on disk
//     and out of reach: no one can log in as the address and nothing is delivered to it;
//   - a Maildir that is not there is nothing to do, so every load may list the same addresses.
//
// Each purge logs one line. It is used from a single goroutine: the start-up and then the
// reload loop.
type purger struct {
	dataDir string
	log     *slog.Logger
	// served are the addresses that were mailboxes of a config this process put in force.
	served map[string]bool
	// deferred are the addresses whose deferral was logged, so it is logged once.
	deferred map[string]bool
}

func newPurger(dataDir string, log *slog.Logger) *purger {
	return &purger{dataDir: dataDir, log: log, served: map[string]bool{}, deferred: map[string]bool{}}
}

// emptyTrash removes what an interrupted purge left in the trash directory.
func (p *purger) emptyTrash() {
	dir := filepath.Join(p.dataDir, trashDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // none yet
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			p.log.Error("Failed to empty the trash of purged mailboxes", "path", filepath.Join(dir, e.Name()), "err", err)
		}
	}
}

// apply purges what cfg lists and then counts cfg's mailboxes as served. Call it once cfg is in
// force.
func (p *purger) apply(cfg *config.Config) {
	current := make(map[string]bool, len(cfg.Mailboxes))
	for _, mb := range cfg.Mailboxes {
		current[mb.Address] = true
	}
	for _, addr := range cfg.Purge {
		switch {
		case current[addr]:
			// A Mailbox with this address exists again: its mail is its own.
		case p.served[addr]:
			if !p.deferred[addr] {
				p.deferred[addr] = true
				p.log.Info("Deferred purging a deleted mailbox until the server restarts: it was open in this process", "mailbox", addr)
			}
		default:
			if err := p.purge(addr); err != nil {
				p.log.Error("Failed to purge a deleted mailbox; its mail is kept", "mailbox", addr, "err", err)
			}
		}
	}
	for addr := range current {
		p.served[addr] = true
	}
}

// purge moves the Maildir of addr into the trash, durably, then removes it.
func (p *purger) purge(addr string) error {
	local, domain, err := config.CheckAddress(addr)
	if err != nil { // config.Resolve checked it; never build a path from anything else
		return err
	}
	parent := filepath.Join(p.dataDir, "mail", domain)
	dir := filepath.Join(parent, local)
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	messages := countMessages(dir)
	trash := filepath.Join(p.dataDir, trashDir)
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return err
	}
	aside := filepath.Join(trash, fmt.Sprintf("%s@%s.%d", local, domain, time.Now().UnixNano()))
	if err := os.Rename(dir, aside); err != nil {
		return fmt.Errorf("moving %s into the trash: %w", dir, err)
	}
	for _, d := range []string{parent, trash} {
		if err := durable.SyncDir(d); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(aside); err != nil {
		return fmt.Errorf("removing %s (the next start retries): %w", aside, err)
	}
	p.log.Info("Purged a deleted mailbox", "mailbox", addr, "dir", dir, "messages", messages)
	return durable.SyncDir(trash)
}

// countMessages counts the message files of a Maildir++ mailbox: the files in the cur/ and new/
// directories of its INBOX and its folders.
func countMessages(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if sub := filepath.Base(filepath.Dir(path)); sub == "cur" || sub == "new" {
				n++
			}
		}
		return nil
	})
	return n
}
