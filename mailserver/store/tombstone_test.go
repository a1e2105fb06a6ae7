package store

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A removed address stays removed: however late a delivery or a login comes, it makes no
// Maildir, until the address is revived; then it is a new, empty mailbox. An address is
// tombstoned also when it had no Maildir, and a failed removal leaves a tombstone standing.
func TestTombstoneRefusesNewMaildirs(t *testing.T) { bothWays(t, testTombstone) }

func testTombstone(t *testing.T) {
	s, data := openTestStore(t)
	const alice, dave = "alice@example.test", "dave@example.test"
	deliver(t, s, goner, body(1000))
	deliver(t, s, alice, body(700))
	if n := removeMailbox(t, s, data); n != 1 {
		t.Fatalf("removed %d messages, want 1", n)
	}
	if n, err := s.RemoveMailbox(dave, filepath.Join(data, "trash")); n != 0 || err != nil {
		t.Fatalf("removing dave, who has no Maildir: %d, %v; want nothing to do", n, err)
	}

	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrMailboxRemoved) {
			t.Errorf("%s: %v, want ErrMailboxRemoved", what, err)
		}
	}
	tryAll := func(addr string) {
		t.Helper()
		_, err := s.Deliver(context.Background(), []string{addr}, nil, strings.NewReader(body(100)))
		refused("Deliver to "+addr, err)
		_, err = s.Deliver(context.Background(), []string{alice, addr}, nil, strings.NewReader(body(100)))
		refused("Deliver to alice and "+addr, err)
		_, err = s.DeliverWithQuota(context.Background(), []string{addr}, func(string) int64 { return 1 << 20 }, nil, strings.NewReader(body(100)))
		refused("DeliverWithQuota to "+addr, err)
		_, err = s.Account(addr)
		refused("Account of "+addr, err)
		_, err = s.Account(strings.ToUpper(addr))
		refused("Account of "+strings.ToUpper(addr), err)
	}
	noMaildir := func(addr string) {
		t.Helper()
		local, domain, _ := strings.Cut(addr, "@")
		if _, err := os.Stat(filepath.Join(data, "mail", domain, local)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s has a Maildir: %v", addr, err)
		}
	}
	tryAll(goner)
	tryAll(dave)
	noMaildir(goner)
	noMaildir(dave)
	if u := onDisk(t, data, alice); u != (Usage{700, 1}) {
		t.Errorf("alice holds %+v, want only her first message: a refused delivery stores no copy", u)
	}

	// A failed removal of a tombstoned address leaves the tombstone.
	notADir := filepath.Join(data, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(goneDir(data), "new"), 0o700); err != nil { // made by another process
		t.Fatal(err)
	}
	if _, err := s.RemoveMailbox(goner, filepath.Join(notADir, "trash")); err == nil {
		t.Fatal("RemoveMailbox into a trash under a file succeeded")
	}
	_, err := s.Account(goner)
	refused("Account after a failed second removal", err)
	if err := os.RemoveAll(goneDir(data)); err != nil {
		t.Fatal(err)
	}

	// Reviving others, or an address never removed, leaves carol's tombstone.
	s.ReviveMailboxes([]string{alice, "Dave@Example.Test", "erin@example.test", "not an address"})
	tryAll(goner)
	noMaildir(goner)
	deliver(t, s, dave, body(300))
	if u := usageOf(t, s, dave); u != (Usage{300, 1}) {
		t.Errorf("dave's usage after revival %+v, want {300 1}", u)
	}

	// Revived, carol is a new mailbox: empty, with the special folders, taking mail at once.
	recreate(s)
	acct, err := s.Account(goner)
	if err != nil {
		t.Fatal(err)
	}
	folders, err := acct.List()
	if err != nil || len(folders) != 1+len(specialFolders) {
		t.Errorf("the new mailbox's folders: %+v, %v; want INBOX and the special-use ones", folders, err)
	}
	inbox, err := acct.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if msgs := messages(t, inbox); len(msgs) != 0 {
		t.Errorf("the new INBOX holds %+v, want nothing", msgs)
	}
	deliver(t, s, goner, body(400))
	if u := usageOf(t, s, goner); u != (Usage{400, 1}) {
		t.Errorf("usage of the new mailbox %+v, want {400 1}", u)
	}
	// The open INBOX picks the message up in the background (a scan, then an index write under
	// the folder's lock): wait for it, so nothing writes into the Maildir while the test's temp
	// dir is being removed.
	waitFor(t, func() bool { return len(messages(t, inbox)) == 1 })
}

// A delivery that resolved its recipient before the removal but whose data comes after (an SMTP
// transaction past RCPT) is refused, body and all, and leaves nothing behind; so does a login
// checked before the removal that opens the account after it.
func TestLateOperationsAfterRemoval(t *testing.T) { bothWays(t, testLateOperations) }

func testLateOperations(t *testing.T) {
	s, data := openTestStore(t)
	acct, err := s.Account(goner) // carol was a mailbox and logged in before
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, s, goner, body(1000))
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.Deliver(context.Background(), []string{goner}, nil, pr)
		done <- err
	}()
	// The delivery reads its body with its Maildir made, outside any operation.
	if _, err := pw.Write([]byte("Subject: late\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if n := removeMailbox(t, s, data); n != 1 {
		t.Errorf("removed %d messages, want 1", n)
	}
	pw.Write([]byte("the rest of the body\r\n"))
	pw.Close()
	if err := <-done; !errors.Is(err, ErrMailboxRemoved) {
		t.Errorf("the late delivery: %v, want ErrMailboxRemoved", err)
	}
	if _, err := s.Account(goner); !errors.Is(err, ErrMailboxRemoved) {
		t.Errorf("the late login's Account: %v, want ErrMailboxRemoved", err)
	}
	if _, err := acct.Folder("INBOX"); !errors.Is(err, ErrMailboxRemoved) {
		t.Errorf("the old session's Folder: %v, want ErrMailboxRemoved", err)
	}
	if _, err := os.Stat(goneDir(data)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("carol's Maildir is back: %v", err)
	}
}
