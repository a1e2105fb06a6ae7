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
//     rest, or gets a temporary failure (451); open IMAP sessions get NO for its folders
//     until the revocation that follows the purge ends them with BYE (see Run). A crash
//     leaves no half-removed mailbox, only a trash entry that the next start removes;
//   - the store leaves the address tombstoned, also when it had no Maildir: an operation that
//     began against an older config and only reaches the store after the purge (an IMAP login
//     whose password was checked before the reload, an SMTP transaction past RCPT, a queued
//     delivery) is refused with store.ErrMailboxRemoved and makes no Maildir. The login gets
//     NO [AUTHENTICATIONFAILED]; SMTP answers 451 4.3.0 and the sender, or the queue, retries
//     and then finds the address gone (550, a bounce). The tombstone is lifted
//     (store.ReviveMailboxes) only when a config that has the address as a mailbox is applied;
//   - a Maildir that is not there is nothing to do, so every load may list the same addresses;
//   - the out-of-office replies' record of whom the mailbox answered (DATA/autoreply) goes with
//     its mail (autoreply.Responder.Forget).
//
// The order, in putInForce, is: the config in force (config.Live.Store), then revive the
// addresses that are its mailboxes, then purge what it lists. Why no interleaving gives a
// purged address that is not a mailbox a Maildir after its purge:
//
//   - the purge tombstones the address in the same step in which the store ends the mailbox's
//     life, and every store operation that could make the Maildir checks both atomically with
//     that step (see the store's package doc): it is done before the Maildir is moved away,
//     so what it made goes too, or it is refused;
//   - a tombstone is lifted only by a revive, and a revive names only mailboxes of the config
//     just put in force; a listed address that is a mailbox is never purged, so within one
//     apply the two sets are disjoint and their order does not matter, and revives and purges
//     all run in the one goroutine that applies configs, one config after the other;
//   - the config is in force before the purge, so from the purge on no new login or RCPT for
//     the address passes (auth and SMTP read the config in force): the tombstone only has to
//     stop what began against an older config, and a revived address is a mailbox of the
//     config that logins and deliveries see.
//
// Tombstones are in memory only: the address stays in the purge list of the config until a
// Mailbox with the address exists again (the operator keeps it there), and Run applies the
// start-up config, purging and so tombstoning it again, before anything is served.
//
// Each purge that found a Maildir logs one line. It is used from a single goroutine: the
// start-up and then the reload loop.
type purger struct {
	dataDir string
	store   *store.Store
	log     *slog.Logger
	// forget, when set, drops what else the server keeps of a purged address (the
	// out-of-office replies' record of whom it answered).
	forget func(addr string) error
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

// apply revives the mailboxes cfg has and purges what it lists (see purger for the order). Call
// it once cfg is in force.
func (p *purger) apply(cfg *config.Config) {
	current := make(map[string]bool, len(cfg.Mailboxes))
	addrs := make([]string, 0, len(cfg.Mailboxes))
	for _, mb := range cfg.Mailboxes {
		current[mb.Address] = true
		addrs = append(addrs, mb.Address)
	}
	p.store.ReviveMailboxes(addrs)
	for _, addr := range cfg.Purge {
		if current[addr] {
			continue // a Mailbox with this address exists again: its mail is its own
		}
		if err := p.purge(addr); err != nil {
			p.log.Error("Failed to purge a deleted mailbox; its mail is kept", "mailbox", addr, "err", err)
		}
	}
}

// purge has the store remove the Maildir of addr and tombstone the address, also when there is
// no Maildir (one could be on its way: a login checked against the previous config).
func (p *purger) purge(addr string) error {
	local, domain, err := config.CheckAddress(addr)
	if err != nil { // config.Resolve checked it; never build a path from anything else
		return err
	}
	dir := filepath.Join(p.dataDir, "mail", domain, local)
	fi, err := os.Lstat(dir)
	existed := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	messages, err := p.store.RemoveMailbox(addr, filepath.Join(p.dataDir, trashDir))
	if err != nil {
		return err
	}
	if existed || messages > 0 {
		p.log.Info("Purged a deleted mailbox", "mailbox", addr, "dir", dir, "messages", messages)
	}
	if p.forget != nil {
		if err := p.forget(addr); err != nil {
			p.log.Error("Failed to remove a purged mailbox's record of automatic replies", "mailbox", addr, "err", err)
		}
	}
	return nil
}
