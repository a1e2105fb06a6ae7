package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const goner = "carol@example.test"

func goneDir(data string) string { return filepath.Join(data, "mail", "example.test", "carol") }

// removeMailbox removes carol's mailbox, checks the trash is empty again, and returns how many
// messages went. Her address stays tombstoned.
func removeMailbox(t *testing.T, s *Store, data string) int {
	t.Helper()
	n, err := s.RemoveMailbox(goner, filepath.Join(data, "trash"))
	if err != nil {
		t.Fatal(err)
	}
	if names := listDir(t, filepath.Join(data, "trash")); len(names) != 0 {
		t.Errorf("the trash still holds %v", names)
	}
	return n
}

// recreate revives carol's address, as the server does when a Mailbox has it again.
func recreate(s *Store) { s.ReviveMailboxes([]string{goner}) }

// checkFresh checks what is left of carol's mailbox after the removals: nothing, or a whole
// Maildir with nothing left in tmp/ whose count is what the store says. It returns the messages.
func checkFresh(t *testing.T, s *Store, data string) int64 {
	t.Helper()
	if _, err := os.Stat(goneDir(data)); errors.Is(err, os.ErrNotExist) {
		if u := usageOf(t, s, goner); u != (Usage{}) {
			t.Errorf("usage of a removed mailbox: %+v, want none", u)
		}
		return 0
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if fi, err := os.Stat(filepath.Join(goneDir(data), sub)); err != nil || !fi.IsDir() {
			t.Errorf("the new Maildir has no %s/: %v", sub, err)
		}
	}
	if names := listDir(t, filepath.Join(goneDir(data), "tmp")); len(names) != 0 {
		t.Errorf("tmp/ of the new Maildir holds %v", names)
	}
	disk := onDisk(t, data, goner)
	if u := usageOf(t, s, goner); u != disk {
		t.Errorf("usage %+v, but the files hold %+v", u, disk)
	}
	return disk.Messages
}

// An idle mailbox goes with all its folders; the address then starts afresh once revived.
func TestRemoveIdleMailbox(t *testing.T) {
	s, data := openTestStore(t)
	acct, err := s.Account(goner)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		deliver(t, s, goner, body(1000))
	}
	if err := acct.Create("Work"); err != nil {
		t.Fatal(err)
	}
	work, err := acct.Folder("Work")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := work.Append(strings.NewReader(body(500)), nil, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	deliver(t, s, "alice@example.test", body(700))

	if n := removeMailbox(t, s, data); n != 4 {
		t.Errorf("removed %d messages, want 4", n)
	}
	if _, err := os.Stat(goneDir(data)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the mailbox directory is still there: %v", err)
	}
	if u := usageOf(t, s, "alice@example.test"); u != (Usage{700, 1}) {
		t.Errorf("alice's usage %+v: another mailbox must be untouched", u)
	}
	if n, err := s.RemoveMailbox(goner, filepath.Join(data, "trash")); n != 0 || err != nil {
		t.Errorf("removing it again: %d, %v; want nothing to do", n, err)
	}

	recreate(s)
	deliver(t, s, goner, body(800))
	if u := usageOf(t, s, goner); u != (Usage{800, 1}) {
		t.Errorf("usage after a new delivery %+v, want {800 1}", u)
	}
	acct, err = s.Account(goner)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := acct.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if msgs := messages(t, inbox); len(msgs) != 1 || msgs[0].UID != 1 {
		t.Errorf("the new INBOX holds %+v, want the new message as UID 1", msgs)
	}
	if _, err := acct.Folder("Work"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("Work in the new mailbox: %v, want ErrNoFolder", err)
	}
}

// Folders open in IMAP sessions (with observers) are gone for those sessions, whatever they try,
// and nothing they try brings a directory back; the new mailbox is not theirs.
func TestRemoveMailboxInUse(t *testing.T) {
	s, data := openTestStore(t)
	acct, err := s.Account(goner)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := acct.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	sent, err := acct.Folder("Sent")
	if err != nil {
		t.Fatal(err)
	}
	rec := observe(inbox)
	deliver(t, s, goner, body(1000))
	deliver(t, s, goner, body(1000))
	waitFor(t, func() bool { n, _ := rec.snapshot(); return n == 2 })
	if _, _, err := sent.Append(strings.NewReader(body(300)), []string{`\Seen`}, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	oldValidity := inbox.UIDValidity()
	_, before := rec.snapshot()

	if n := removeMailbox(t, s, data); n != 3 {
		t.Errorf("removed %d messages, want 3", n)
	}
	gone := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrFolderGone) {
			t.Errorf("%s after the removal: %v, want ErrFolderGone", what, err)
		}
	}
	gone("Refresh", inbox.Refresh())
	gone("View", inbox.View(func(uint32, uint32, []Message) { t.Error("View ran") }))
	_, err = inbox.Status()
	gone("Status", err)
	_, _, err = inbox.Append(strings.NewReader(body(100)), nil, time.Time{}, 0)
	gone("Append", err)
	gone("StoreFlags", inbox.StoreFlags([]uint32{1}, FlagsAdd, []string{`\Seen`}, nil, nil))
	_, err = inbox.Expunge(nil)
	gone("Expunge", err)
	_, err = inbox.Open(1)
	gone("Open", err)
	_, _, _, err = inbox.CopyTo(sent, []uint32{1}, 0)
	gone("CopyTo", err)
	_, err = acct.Folder("INBOX")
	gone("Folder", err)
	gone("Create", acct.Create("New"))
	gone("Subscribe", acct.Subscribe("Sent"))
	gone("Rename", acct.Rename("Sent", "Old"))
	_, err = acct.List()
	gone("List", err)
	if _, err := os.Stat(goneDir(data)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old sessions brought the mailbox directory back: %v", err)
	}

	// Revived, the address is a new mailbox at once; the old account and folders stay out of it.
	recreate(s)
	deliver(t, s, goner, body(600))
	acct2, err := s.Account(goner)
	if err != nil {
		t.Fatal(err)
	}
	inbox2, err := acct2.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if inbox2 == inbox || inbox2.UIDValidity() <= oldValidity {
		t.Errorf("the new INBOX is the old one, or its UIDVALIDITY %d is not above %d", inbox2.UIDValidity(), oldValidity)
	}
	if msgs := messages(t, inbox2); len(msgs) != 1 || msgs[0].UID != 1 {
		t.Errorf("the new INBOX holds %+v, want one message, UID 1", msgs)
	}
	_, err = acct.Folder("INBOX")
	gone("the old account's Folder, with a new mailbox there", err)
	if _, after := rec.snapshot(); !slices.Equal(after, before) {
		t.Errorf("the old INBOX's observer was told %v after the removal", after[len(before):])
	}
	if u := usageOf(t, s, goner); u != (Usage{600, 1}) {
		t.Errorf("usage of the new mailbox %+v, want {600 1}", u)
	}
}

// RemoveMailbox waits for an operation under way, and none starts meanwhile.
func TestRemoveWaitsForOperationsUnderWay(t *testing.T) {
	s, data := openTestStore(t)
	deliver(t, s, goner, body(1000))
	mb, err := s.mailboxOf(goner)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.beginCharge(mb, 0, 0) // an operation under way, as an expunge holds it
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() {
		n, err := s.RemoveMailbox(goner, filepath.Join(data, "trash"))
		if err != nil {
			t.Error(err)
		}
		done <- n
	}()
	waitFor(t, mb.isRemoved)
	if _, err := s.Deliver(context.Background(), []string{goner}, nil, strings.NewReader(body(100))); !errors.Is(err, ErrMailboxRemoved) {
		t.Errorf("delivery while the removal waits: %v, want ErrMailboxRemoved", err)
	}
	if _, err := s.Account(goner); !errors.Is(err, ErrMailboxRemoved) {
		t.Errorf("Account while the removal waits: %v, want ErrMailboxRemoved", err)
	}
	select {
	case <-done:
		t.Fatal("RemoveMailbox did not wait for the operation under way")
	default:
	}
	if _, err := os.Stat(goneDir(data)); err != nil {
		t.Errorf("the mailbox went before the operation under way ended: %v", err)
	}
	c.end(true, 0, 0)
	if n := <-done; n != 1 {
		t.Errorf("removed %d messages, want 1", n)
	}
	recreate(s)
	deliver(t, s, goner, body(100))
}

// A removal that cannot move the mailbox leaves it as it was, and in use.
func TestRemoveFailureKeepsMailbox(t *testing.T) {
	s, data := openTestStore(t)
	acct, err := s.Account(goner)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := acct.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, s, goner, body(1000))
	notADir := filepath.Join(data, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveMailbox(goner, filepath.Join(notADir, "trash")); err == nil {
		t.Fatal("RemoveMailbox into a trash under a file succeeded")
	}
	deliver(t, s, goner, body(1000))
	if err := inbox.Refresh(); err != nil {
		t.Errorf("the open INBOX after a failed removal: %v", err)
	}
	waitFor(t, func() bool { return len(messages(t, inbox)) == 2 })
	if u := usageOf(t, s, goner); u != (Usage{2000, 2}) {
		t.Errorf("usage %+v, want {2000 2}", u)
	}
}

// Deliveries and IMAP sessions racing with removals, each followed by a revival: each delivery or
// append either lands before a removal (and is removed with the mailbox) or fails with
// ErrMailboxRemoved, or lands in the new mailbox after the revival; none is lost or half made,
// and the count stays right.
func TestRemoveRacesWithDeliveries(t *testing.T) { bothWays(t, testRemoveRacesWithDeliveries) }

func testRemoveRacesWithDeliveries(t *testing.T) {
	s, data := openTestStore(t)
	const workers, each, removals = 4, 40, 8
	var stored, refused atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(30 * time.Second)
	// try runs op until it stores a message: a refusal is retried a moment later, as a sending
	// server or a mail client would.
	try := func(what string, op func() error) {
		for time.Now().Before(deadline) {
			err := op()
			if err == nil {
				stored.Add(1)
				return
			}
			if !errors.Is(err, ErrFolderGone) { // ErrMailboxRemoved is one
				t.Errorf("%s: %v, want nil or a removed mailbox", what, err)
				return
			}
			refused.Add(1)
			time.Sleep(time.Millisecond)
		}
	}
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				rcpts := []string{goner}
				if i%4 == 0 {
					rcpts = append(rcpts, "alice@example.test") // all or nothing across both
				}
				b := fmt.Sprintf("Subject: %d-%d\r\n\r\nbody\r\n", w, i)
				try("Deliver", func() error {
					_, err := s.Deliver(context.Background(), rcpts, nil, strings.NewReader(b))
					return err
				})
			}
		})
	}
	wg.Go(func() { // an IMAP session logging in again and again, appending and polling
		for range each {
			try("Append", func() error {
				acct, err := s.Account(goner)
				if err != nil {
					return err
				}
				inbox, err := acct.Folder("INBOX")
				if err != nil {
					return err
				}
				observe(inbox)
				if err := inbox.Refresh(); err != nil {
					return err
				}
				_, _, err = inbox.Append(strings.NewReader(body(200)), nil, time.Time{}, 0)
				return err
			})
		}
	})
	var removed int64
	for r := range removals {
		for stored.Load() < int64(r+1)*(workers+1)*each/(removals+1) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		removed += int64(removeMailbox(t, s, data))
		recreate(s)
	}
	wg.Wait()
	if stored.Load() != (workers+1)*each {
		t.Fatalf("only %d of %d messages were stored by the deadline", stored.Load(), (workers+1)*each)
	}
	left := checkFresh(t, s, data)
	if got := removed + left; got != stored.Load() {
		t.Errorf("%d messages removed and %d left make %d, but %d were stored (%d refused)",
			removed, left, got, stored.Load(), refused.Load())
	}
	t.Logf("%d stored: %d removed, %d left; %d refused and retried", stored.Load(), removed, left, refused.Load())
	if u, disk := usageOf(t, s, "alice@example.test"), onDisk(t, data, "alice@example.test"); u != disk {
		t.Errorf("alice's usage %+v, but her files hold %+v", u, disk)
	}
}
