package store

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Delivery into Junk: a mailbox never opened gets its folders first and the copy lands in Junk,
// not INBOX; a transaction's copies go to different folders of different mailboxes at once; an
// open Junk folder sees its new message; the copy counts towards the quota, and a message over
// it lands nowhere.
func TestDeliverToFolders(t *testing.T) {
	s, data := openTestStore(t)
	ctx := context.Background()
	msg := "Subject: spam\r\n\r\nbuy now\r\n"
	if _, err := s.DeliverToFolders(ctx, []Target{{Mailbox: "alice@example.test", Folder: "Junk"}, {Mailbox: "bob@example.test"}}, nil, nil, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	alice := filepath.Join(data, "mail", "example.test", "alice")
	if n := len(listDir(t, filepath.Join(alice, ".Junk", "new"))); n != 1 {
		t.Errorf("alice's Junk has %d new messages, want 1", n)
	}
	if n := len(listDir(t, filepath.Join(alice, "new"))); n != 0 {
		t.Errorf("alice's INBOX has %d new messages, want 0", n)
	}
	if n := len(listDir(t, filepath.Join(data, "mail", "example.test", "bob", "new"))); n != 1 {
		t.Errorf("bob's INBOX has %d new messages, want 1", n)
	}
	a, err := s.Account("alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	folders, err := a.List()
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(folders, func(f FolderInfo) bool { return f.Name == "Junk" }); i < 0 || folders[i].SpecialUse != `\Junk` || !folders[i].Subscribed {
		t.Errorf("alice's folders %+v lack a subscribed \\Junk", folders)
	}

	// An open Junk folder picks the next one up.
	junk, err := a.Folder("Junk")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeliverToFolders(ctx, []Target{{Mailbox: "alice@example.test", Folder: "Junk"}}, nil, nil, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(messages(t, junk)) != 2; {
		if time.Now().After(deadline) {
			t.Fatalf("the open Junk folder has %d messages after 30s, want 2", len(messages(t, junk)))
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Quota: Junk counts like any folder.
	before := usageOf(t, s, "alice@example.test")
	if before.Messages != 2 || before.Bytes != 2*int64(len(msg)) {
		t.Errorf("alice's usage %+v, want 2 messages of %d bytes", before, len(msg))
	}
	quota := func(string) int64 { return before.Bytes + 10 }
	_, err = s.DeliverToFolders(ctx, []Target{{Mailbox: "alice@example.test", Folder: "Junk"}}, quota, nil, strings.NewReader(msg))
	if !errors.Is(err, ErrOverQuota) {
		t.Fatalf("delivery past the quota: %v, want ErrOverQuota", err)
	}
	if n := len(listDir(t, filepath.Join(alice, ".Junk", "cur"))) + len(listDir(t, filepath.Join(alice, ".Junk", "new"))); n != 2 {
		t.Errorf("alice's Junk has %d messages after a refused delivery, want 2", n)
	}
}

// A Junk folder the user deleted is made again, subscribed, when mail for it arrives.
func TestDeliverToFoldersRemakesDeletedFolder(t *testing.T) {
	s, data := openTestStore(t)
	a, err := s.Account("carol@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("Junk"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unsubscribe("Junk"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeliverToFolders(context.Background(), []Target{{Mailbox: "carol@example.test", Folder: "Junk"}}, nil, nil, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if n := len(listDir(t, filepath.Join(data, "mail", "example.test", "carol", ".Junk", "new"))); n != 1 {
		t.Errorf("carol's remade Junk has %d messages, want 1", n)
	}
	subs, err := a.Subscriptions()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(subs, "Junk") {
		t.Errorf("subscriptions %v lack Junk", subs)
	}
}
