package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/store"
)

// trashDir is where a purged Maildir is moved, under the data dir, before it is removed.
const trashDir = "trash"

// purger removes the Maildirs that a config lists in Purge (config.PurgeAnnotation): the mail of
// Mailboxes deleted with spec.reclaimPolicy: Delete. Mail must never be lost by accident, so:
//
//   - only listed addresses are touched, and never one that is a mailbox of the config in force;
//     by the time a config is applied it is in force, so SMTP refuses a purged address at RCPT
//     and IMAP refuses its login;
//   - the store removes the mailbox at once, also one that is in use (store.RemoveMailbox):
//     it refuses new operations on it, waits for those under way, renames
//     <data>/mail/<domain>/<local> into <data>/trash/ (one atomic rename on the same file
//     system, both directories fsynced), forgets what it kept of the mailbox in memory, then
//     removes the trash copy. A delivery under way either lands before and goes with the
//     rest, or gets a temporary failure (451); open IMAP sessions get NO for its folders. A
//     crash leaves no half-removed mailbox, only a trash entry that the next start removes;
//   - a transaction past RCPT before the reload whose data only reaches the store after the
//     purge makes a new Maildir with that one message; the next load (a config change or a
//     start) that still lists the address removes it;
//   - a Maildir that is not there is nothing to do, so every load may list the same addresses.
//
// Each purge logs one line. It is used from a single goroutine: the start-up and then the
// reload loop.
type purger struct {
	dataDir string
	store   *store.Store
	log     *slog.Logger
}

func newPurger(dataDir string, st *store.Store, log *slog.Logger) *purger {
	return &purger{dataDir: dataDir, store: st, log: log}
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

// apply purges what cfg lists. Call it once cfg is in force.
func (p *purger) apply(cfg *config.Config) {
	current := make(map[string]bool, len(cfg.Mailboxes))
	for _, mb := range cfg.Mailboxes {
		current[mb.Address] = true
	}
	for _, addr := range cfg.Purge {
		if current[addr] {
			continue // a Mailbox with this address exists again: its mail is its own
		}
		if err := p.purge(addr); err != nil {
			p.log.Error("Failed to purge a deleted mailbox; its mail is kept", "mailbox", addr, "err", err)
		}
	}
}

// purge has the store remove the Maildir of addr, if there is one.
func (p *purger) purge(addr string) error {
	local, domain, err := config.CheckAddress(addr)
	if err != nil { // config.Resolve checked it; never build a path from anything else
		return err
	}
	dir := filepath.Join(p.dataDir, "mail", domain, local)
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
	messages, err := p.store.RemoveMailbox(addr, filepath.Join(p.dataDir, trashDir))
	if err != nil {
		return err
	}
	p.log.Info("Purged a deleted mailbox", "mailbox", addr, "dir", dir, "messages", messages)
	return nil
}
