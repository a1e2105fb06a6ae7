// Package storetest helps tests look at a store's Maildirs from outside while the store may
// still be working on them.
//
// A loaded folder (the INBOX, Junk or Sent an IMAP session, a delivery or a test opened) picks
// new mail up in the background: each delivery to it schedules a scan that renames the new files
// from new/ to cur/ (as "<base>:2,") and rewrites the folder's index (see the store's package
// doc). So a test that lists new/ and then reads what it listed can find the file gone, a test
// that lists new/ and cur/ one after the other can see a message twice, and a test that ends
// right after a delivery can have the index written while its temp dir is being removed. Inbox
// and Settle are the two answers.
package storetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/store"
)

// Message is one message file of a Maildir.
type Message struct {
	Base string // the Maildir base name, without ":2,<flags>": the same in new/ and cur/
	Data string
}

// Inbox returns the messages of the Maildir dir (new/ and cur/, not its Maildir++ folders), each
// once, sorted by base name (their delivery order). A message listed in new/ that the store
// moved to cur/ since is read under its new name; one renamed in cur/ (a flag change) is found
// again there. A missing dir holds no messages.
func Inbox(t testing.TB, dir string) []Message {
	t.Helper()
	seen := map[string]bool{}
	var out []Message
	// new/ first: a file moves from new/ to cur/, never back, so listing in this order sees
	// every message at least once.
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			base, _, _ := strings.Cut(e.Name(), ":")
			if seen[base] {
				continue
			}
			seen[base] = true
			data, err := readMessage(dir, sub, e.Name())
			if err != nil {
				t.Fatalf("reading %s: %v", e.Name(), err)
			}
			out = append(out, Message{Base: base, Data: data})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Base < out[j].Base })
	return out
}

// readMessage reads the file listed as name in dir's sub/, following it to cur/ under whatever
// flags it has now if it was moved or renamed since the listing.
func readMessage(dir, sub, name string) (string, error) {
	path := filepath.Join(dir, sub, name)
	base, _, _ := strings.Cut(name, ":")
	var err error
	for range 100 { // each retry follows one rename that raced the read
		var b []byte
		if b, err = os.ReadFile(path); err == nil || !errors.Is(err, os.ErrNotExist) {
			return string(b), err
		}
		moved, _ := filepath.Glob(filepath.Join(dir, "cur", globEscape(base)+":*"))
		if len(moved) != 1 {
			return "", err // expunged, or not one message
		}
		path = moved[0]
	}
	return "", err
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Settle waits, when the test ends, for the background pick-up of new mail in every folder of st
// under dataDir that may be loaded (the INBOX, and Junk, Sent or any other folder an IMAP session
// or a delivery into folders opened), so that nothing writes into the Maildirs once the test's
// temp dir is being removed. Call it once dataDir exists (after t.TempDir) and before starting
// what delivers into st, so that it runs after those have stopped and before the temp dir is
// removed (cleanups run last registered first).
//
// A folder is loaded only after its Account was opened, which writes the mailbox's
// subscriptions file, so Settle looks at those mailboxes only, and at every folder the store
// lists for each (Account.List: the store does not say which are loaded; opening one that was
// not is synchronous and leaves nothing running). For each folder it waits until new/ is empty (a
// refresh, or the pick-up under way, moves what is there), then takes the folder's lock once
// (View), so the scan that emptied new/ has written its index too; a pick-up scheduled but not
// started by then finds new/ empty and writes nothing. Mailboxes and folders the store removed
// are skipped.
func Settle(t testing.TB, st *store.Store, dataDir string) {
	t.Cleanup(func() {
		subs, _ := filepath.Glob(filepath.Join(dataDir, "mail", "*", "*", "subscriptions"))
		for _, s := range subs {
			mailbox := filepath.Dir(s)
			address := filepath.Base(mailbox) + "@" + filepath.Base(filepath.Dir(mailbox))
			if err := settleMailbox(st, mailbox, address); err != nil {
				t.Errorf("settling the folders of %s: %v", address, err)
			}
		}
	})
}

func settleMailbox(st *store.Store, mailbox, address string) error {
	acct, err := st.Account(address)
	if err != nil {
		return nil // removed (tombstoned): its folders are gone and pick up nothing
	}
	folders, err := acct.List()
	if errors.Is(err, store.ErrMailboxRemoved) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, fi := range folders {
		dir := mailbox // the INBOX is the mailbox's own Maildir; a folder is its Maildir++ ".name"
		if fi.Name != "INBOX" {
			dir = filepath.Join(mailbox, "."+fi.Name)
		}
		if err := settle(acct, fi.Name, dir); err != nil {
			return fmt.Errorf("%s: %w", fi.Name, err)
		}
	}
	return nil
}

func settle(acct *store.Account, name, dir string) error {
	folder, err := acct.Folder(name)
	if errors.Is(err, store.ErrFolderGone) || errors.Is(err, store.ErrNoFolder) || errors.Is(err, store.ErrMailboxRemoved) {
		return nil // deleted since the listing
	}
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if err := folder.Refresh(); errors.Is(err, store.ErrFolderGone) {
			return nil
		} else if err != nil {
			return err
		}
		names, err := os.ReadDir(filepath.Join(dir, "new"))
		if errors.Is(err, os.ErrNotExist) {
			return nil // deleted since the refresh
		}
		if err != nil {
			return err
		}
		if len(names) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("new/ still holds %d files", len(names))
		}
		time.Sleep(time.Millisecond)
	}
	if err := folder.View(func(uint32, uint32, []store.Message) {}); err != nil && !errors.Is(err, store.ErrFolderGone) {
		return err
	}
	return nil
}
