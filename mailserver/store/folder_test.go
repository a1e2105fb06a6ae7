package store

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu     sync.Mutex
	events []string
	total  uint32
}

func (r *recorder) Appended(total uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total = total
	r.events = append(r.events, "appended")
}
func (r *recorder) Expunged(seq uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total--
	r.events = append(r.events, "expunged")
}
func (r *recorder) FlagsChanged(seq, uid uint32, flags []string, origin any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "flags:"+strings.Join(flags, " "))
}
func (r *recorder) KeywordsDefined(keywords []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "keywords:"+strings.Join(keywords, " "))
}
func (r *recorder) snapshot() (uint32, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total, slices.Clone(r.events)
}

func observe(f *Folder) *recorder {
	var rec *recorder
	f.Attach(func(n uint32) (any, Observer) {
		rec = &recorder{total: n}
		return rec, rec
	})
	return rec
}

func messages(t *testing.T, f *Folder) []Message {
	t.Helper()
	var out []Message
	if err := f.View(func(_, _ uint32, msgs []Message) { out = slices.Clone(msgs) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func deliver(t *testing.T, s *Store, addr, body string) {
	t.Helper()
	if _, err := s.Deliver(context.Background(), []string{addr}, nil, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

func TestAccountFirstUse(t *testing.T) {
	s, data := openTestStore(t)
	a, err := s.Account("alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	list, err := a.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fi := range list {
		got = append(got, fi.Name+"|"+fi.SpecialUse)
		if !fi.Subscribed {
			t.Errorf("%s is not subscribed", fi.Name)
		}
	}
	want := []string{"INBOX|", `Archive|\Archive`, `Drafts|\Drafts`, `Junk|\Junk`, `Sent|\Sent`, `Trash|\Trash`}
	if !slices.Equal(got, want) {
		t.Errorf("folders %v, want %v", got, want)
	}
	for _, d := range []string{".Sent/cur", ".Sent/maildirfolder", "cur", "subscriptions"} {
		if _, err := os.Stat(filepath.Join(data, "mail", "example.test", "alice", d)); err != nil {
			t.Errorf("missing %s: %v", d, err)
		}
	}
	// A deleted special folder stays deleted.
	if err := a.Delete("Junk"); err != nil {
		t.Fatal(err)
	}
	s2, _ := Open(data, nil)
	a2, _ := s2.Account("alice@example.test")
	if _, err := a2.Folder("Junk"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("Junk came back after deletion: %v", err)
	}
}

func TestNewMailGetsUIDsAndSurvivesRestart(t *testing.T) {
	s, data := openTestStore(t)
	deliver(t, s, "alice@example.test", "Subject: one\r\n\r\n1\r\n")
	deliver(t, s, "alice@example.test", "Subject: two\r\n\r\n2\r\n")
	a, _ := s.Account("alice@example.test")
	inbox, err := a.Folder("inbox")
	if err != nil {
		t.Fatal(err)
	}
	msgs := messages(t, inbox)
	if len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 2 {
		t.Fatalf("INBOX holds %+v, want UIDs 1 and 2", msgs)
	}
	box := filepath.Join(data, "mail", "example.test", "alice")
	if n := listDir(t, filepath.Join(box, "new")); len(n) != 0 {
		t.Errorf("new/ still holds %v", n)
	}
	if n := listDir(t, filepath.Join(box, "cur")); len(n) != 2 || !strings.HasSuffix(n[0], ":2,") {
		t.Errorf("cur/ holds %v, want two files with an empty info", n)
	}
	if err := inbox.StoreFlags([]uint32{2}, FlagsAdd, []string{`\Seen`, `\Flagged`, "$Label1"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := inbox.Expunge(nil); err != nil {
		t.Fatal(err)
	}
	st1, _ := inbox.Status()

	s2, _ := Open(data, nil)
	a2, _ := s2.Account("alice@example.test")
	inbox2, _ := a2.Folder("INBOX")
	st2, _ := inbox2.Status()
	if st1 != st2 {
		t.Errorf("status after restart %+v, want %+v", st2, st1)
	}
	msgs = messages(t, inbox2)
	if len(msgs) != 2 || msgs[1].UID != 2 || !slices.Equal(msgs[1].Flags(), []string{`\Flagged`, `\Seen`, "$Label1"}) {
		t.Errorf("after restart: %+v", msgs)
	}
	deliver(t, s2, "alice@example.test", "Subject: three\r\n\r\n3\r\n")
	waitFor(t, func() bool { return len(messages(t, inbox2)) == 3 })
	if m := messages(t, inbox2)[2]; m.UID != 3 {
		t.Errorf("third message has UID %d, want 3", m.UID)
	}
}

func TestDamagedIndexIsRebuilt(t *testing.T) {
	for name, damage := range map[string]func(path string) error{
		"deleted":   os.Remove,
		"truncated": func(p string) error { return os.Truncate(p, 40) },
		"garbage":   func(p string) error { return os.WriteFile(p, []byte("\x00\xff garbage\n"), 0o600) },
	} {
		t.Run(name, func(t *testing.T) {
			s, data := openTestStore(t)
			deliver(t, s, "bob@example.test", "Subject: a\r\n\r\n")
			deliver(t, s, "bob@example.test", "Subject: b\r\n\r\n")
			a, _ := s.Account("bob@example.test")
			inbox, _ := a.Folder("INBOX")
			if err := inbox.StoreFlags([]uint32{1}, FlagsAdd, []string{`\Seen`}, nil, nil); err != nil {
				t.Fatal(err)
			}
			before, _ := inbox.Status()
			if err := damage(filepath.Join(data, "mail", "example.test", "bob", indexName)); err != nil {
				t.Fatal(err)
			}
			s2, _ := Open(data, nil)
			a2, _ := s2.Account("bob@example.test")
			inbox2, err := a2.Folder("INBOX")
			if err != nil {
				t.Fatal(err)
			}
			after, _ := inbox2.Status()
			if after.Messages != 2 || after.Unseen != 1 {
				t.Errorf("rebuilt folder %+v, want 2 messages with 1 unseen", after)
			}
			if after.UIDValidity == before.UIDValidity {
				t.Errorf("UIDVALIDITY %d kept although the UIDs were lost", after.UIDValidity)
			}
			if _, err := readIndex(filepath.Join(data, "mail", "example.test", "bob")); err != nil {
				t.Errorf("index not rewritten: %v", err)
			}
		})
	}
}

func TestDeliveryNotifiesObserver(t *testing.T) {
	s, _ := openTestStore(t)
	a, _ := s.Account("alice@example.test")
	inbox, _ := a.Folder("INBOX")
	rec := observe(inbox)
	deliver(t, s, "alice@example.test", "Subject: hi\r\n\r\n")
	// Nothing here refreshes the folder (an IMAP session would, on its next command): only the
	// delivery's own notice can tell the observer. How fast is for the IMAP IDLE test and the
	// benchmarks; a time bound here would only fail on a loaded machine.
	waitFor(t, func() bool { n, _ := rec.snapshot(); return n == 1 })
}

func TestChangesByOtherProcesses(t *testing.T) {
	s, data := openTestStore(t)
	deliver(t, s, "alice@example.test", "Subject: a\r\n\r\n")
	deliver(t, s, "alice@example.test", "Subject: b\r\n\r\n")
	a, _ := s.Account("alice@example.test")
	inbox, _ := a.Folder("INBOX")
	rec := observe(inbox)
	cur := filepath.Join(data, "mail", "example.test", "alice", "cur")
	names := listDir(t, cur)
	slices.Sort(names)
	msgs := messages(t, inbox)
	// mutt marks the first read and deletes the second's file; a third arrives in cur/.
	for _, m := range msgs {
		if m.UID == 1 {
			os.Rename(filepath.Join(cur, m.file), filepath.Join(cur, m.base+":2,S"))
		} else {
			os.Remove(filepath.Join(cur, m.file))
		}
	}
	os.WriteFile(filepath.Join(cur, "123.M1P1Q1.other:2,F"), []byte("Subject: c\r\n\r\n"), 0o600)
	if err := inbox.Refresh(); err != nil {
		t.Fatal(err)
	}
	total, events := rec.snapshot()
	if total != 2 || !slices.Contains(events, `flags:\Seen`) || !slices.Contains(events, "expunged") {
		t.Errorf("observer saw %v (total %d)", events, total)
	}
	msgs = messages(t, inbox)
	if len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 3 || !msgs[1].Has(`\flagged`) {
		t.Errorf("folder holds %+v", msgs)
	}
}

func TestAppendCopyMoveExpunge(t *testing.T) {
	s, data := openTestStore(t)
	a, _ := s.Account("alice@example.test")
	drafts, _ := a.Folder("Drafts")
	date := time.Date(2020, 5, 17, 10, 0, 0, 0, time.UTC)
	body := "Subject: draft\r\n\r\nText\r\n"
	uv, uid, err := drafts.Append(strings.NewReader(body), []string{`\Draft`, `\Seen`, "$Todo"}, date, 0)
	if err != nil || uid != 1 || uv == 0 {
		t.Fatalf("Append = %d, %d, %v", uv, uid, err)
	}
	m := messages(t, drafts)[0]
	if !m.Date.Equal(date) || m.Size != int64(len(body)) || m.Letters != "DS" {
		t.Errorf("appended message %+v", m)
	}
	f, _ := drafts.Open(uid)
	got, _ := io.ReadAll(f)
	f.Close()
	if string(got) != body {
		t.Errorf("Open read %q", got)
	}
	archive, _ := a.Folder("Archive")
	_, src, dst, err := drafts.CopyTo(archive, []uint32{1, 99}, 0)
	if err != nil || !slices.Equal(src, []uint32{1}) || !slices.Equal(dst, []uint32{1}) {
		t.Fatalf("CopyTo = %v %v %v", src, dst, err)
	}
	if c := messages(t, archive)[0]; !c.Date.Equal(date) || !slices.Equal(c.Flags(), m.Flags()) {
		t.Errorf("copy %+v differs from %+v", c, m)
	}
	trash, _ := a.Folder("Trash")
	_, src, dst, err = archive.MoveTo(trash, []uint32{1})
	if err != nil || len(src) != 1 || len(dst) != 1 {
		t.Fatalf("MoveTo = %v %v %v", src, dst, err)
	}
	if n := len(messages(t, archive)); n != 0 {
		t.Errorf("archive holds %d messages after the move", n)
	}
	if _, err := drafts.Expunge(nil); err != nil {
		t.Fatal(err)
	}
	if n := len(messages(t, drafts)); n != 1 {
		t.Errorf("expunge removed a message without \\Deleted")
	}
	drafts.StoreFlags([]uint32{1}, FlagsAdd, []string{`\Deleted`}, nil, nil)
	if gone, _ := drafts.Expunge(func(uid uint32) bool { return uid == 2 }); len(gone) != 0 {
		t.Errorf("UID EXPUNGE 2 removed %v", gone)
	}
	if gone, _ := drafts.Expunge(nil); !slices.Equal(gone, []uint32{1}) {
		t.Errorf("EXPUNGE removed %v", gone)
	}
	if n := listDir(t, filepath.Join(data, "mail", "example.test", "alice", ".Drafts", "cur")); len(n) != 0 {
		t.Errorf("expunged file left: %v", n)
	}
}

func TestFolderManagement(t *testing.T) {
	s, _ := openTestStore(t)
	a, _ := s.Account("alice@example.test")
	if err := a.Create("Work.Projects.2024"); err != nil {
		t.Fatal(err)
	}
	if err := a.Create("Work"); !errors.Is(err, ErrFolderExists) {
		t.Errorf("Create of an existing folder: %v", err)
	}
	for _, bad := range []string{"", "a..b", ".x", "x.", "a/b", "a\x01"} {
		if err := a.Create(bad); !errors.Is(err, ErrBadFolderName) {
			t.Errorf("Create(%q) = %v, want ErrBadFolderName", bad, err)
		}
	}
	if err := a.Delete("Work"); !errors.Is(err, ErrHasChildren) {
		t.Errorf("Delete of a parent: %v", err)
	}
	if err := a.Delete("INBOX"); !errors.Is(err, ErrInbox) {
		t.Errorf("Delete INBOX: %v", err)
	}
	w, _ := a.Folder("Work.Projects")
	w.Append(strings.NewReader("Subject: x\r\n\r\n"), nil, time.Time{}, 0)
	if err := a.Rename("Work", "Jobs.Old"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Status(); !errors.Is(err, ErrFolderGone) {
		t.Errorf("renamed folder still usable: %v", err)
	}
	list, _ := a.List()
	var names []string
	for _, fi := range list {
		names = append(names, fi.Name)
	}
	for _, n := range []string{"Jobs", "Jobs.Old", "Jobs.Old.Projects", "Jobs.Old.Projects.2024"} {
		if !slices.Contains(names, n) {
			t.Errorf("after rename, %s missing from %v", n, names)
		}
	}
	moved, _ := a.Folder("Jobs.Old.Projects")
	if st, _ := moved.Status(); st.Messages != 1 {
		t.Errorf("renamed folder holds %d messages", st.Messages)
	}
	if err := a.Subscribe("Jobs.Old"); err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe("Nope"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("Subscribe to a missing folder: %v", err)
	}
	if err := a.Unsubscribe("Trash"); err != nil {
		t.Fatal(err)
	}
	subs, _ := a.Subscriptions()
	if !slices.Contains(subs, "Jobs.Old") || slices.Contains(subs, "Trash") {
		t.Errorf("subscriptions %v", subs)
	}
	// Renaming INBOX moves its messages.
	deliver(t, s, "alice@example.test", "Subject: in\r\n\r\n")
	if err := a.Rename("INBOX", "Old-Inbox"); err != nil {
		t.Fatal(err)
	}
	inbox, _ := a.Folder("INBOX")
	old, _ := a.Folder("Old-Inbox")
	if st, _ := inbox.Status(); st.Messages != 0 {
		t.Errorf("INBOX holds %d messages after rename", st.Messages)
	}
	if st, _ := old.Status(); st.Messages != 1 {
		t.Errorf("renamed INBOX holds %d messages", st.Messages)
	}
}

func TestNewKeywordsAreAnnounced(t *testing.T) {
	s, _ := openTestStore(t)
	deliver(t, s, "alice@example.test", "Subject: a\r\n\r\n")
	a, _ := s.Account("alice@example.test")
	inbox, _ := a.Folder("INBOX")
	rec := observe(inbox)
	inbox.StoreFlags([]uint32{1}, FlagsAdd, []string{"$Work", `\Seen`}, nil, nil)
	inbox.StoreFlags([]uint32{1}, FlagsRemove, []string{"$Work"}, nil, nil)
	inbox.StoreFlags([]uint32{1}, FlagsAdd, []string{"$Work"}, nil, nil)
	_, events := rec.snapshot()
	n := 0
	for _, ev := range events {
		if ev == "keywords:$Work" {
			n++
		}
	}
	if len(events) == 0 || events[0] != "keywords:$Work" || n != 1 {
		t.Errorf("events %v, want the keyword announced once, before the flags change", events)
	}
	if kws := inbox.Keywords(); !slices.Equal(kws, []string{"$Work"}) {
		t.Errorf("Keywords() = %v", kws)
	}
}

// A filesystem with coarse directory timestamps (Linux before 6.13, some NFS servers) can give
// another process's change the mtime we recorded at our last scan. The change is still found:
// by the first refresh once the racy window has passed, and only then.
func TestChangeInTheSameTimestampTick(t *testing.T) {
	defer func(w time.Duration) { racyWindow = w }(racyWindow)
	racyWindow = 300 * time.Millisecond
	s, data := openTestStore(t)
	deliver(t, s, "alice@example.test", "Subject: a\r\n\r\n")
	a, _ := s.Account("alice@example.test")
	inbox, _ := a.Folder("INBOX")
	if err := inbox.Refresh(); err != nil { // settle: every message in cur/, stamps recorded
		t.Fatal(err)
	}
	cur := filepath.Join(data, "mail", "example.test", "alice", "cur")
	before, err := os.Stat(cur)
	if err != nil {
		t.Fatal(err)
	}
	// mutt marks the message read, and the directory keeps the mtime it had (the same tick).
	m := messages(t, inbox)[0]
	if err := os.Rename(filepath.Join(cur, m.file), filepath.Join(cur, m.base+":2,S")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(cur, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !messages(t, inbox)[0].Has(`\Seen`) {
		if time.Now().After(deadline) {
			t.Fatal(`the \Seen flag set in the same timestamp tick as the last scan was never found`)
		}
		time.Sleep(50 * time.Millisecond)
		if err := inbox.Refresh(); err != nil {
			t.Fatal(err)
		}
	}
	// Found: the stamp recorded by that scan is no longer racy, so refreshes are cheap again.
	inbox.mu.Lock()
	racy := !inbox.racyUntil.IsZero() && time.Since(before.ModTime()) > racyWindow
	inbox.mu.Unlock()
	if racy {
		t.Error("the stamp stayed racy after the window: every refresh would rescan")
	}
}
