package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func openTestStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { settlePickups(t, s) }) // before the temp dir is removed
	return s, dir
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

var maildirName = regexp.MustCompile(`^\d+\.M\d+P\d+Q\d+\.[^/:]+,S=(\d+)$`)

func TestDeliverOneMailbox(t *testing.T) { bothWays(t, testDeliverOneMailbox) }

func testDeliverOneMailbox(t *testing.T) {
	s, data := openTestStore(t)
	prefix := []byte("Received: from test\r\n")
	body := "Subject: hi\r\n\r\nHello.\r\n"
	n, err := s.Deliver(context.Background(), []string{"Alice@Example.test"}, prefix, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	want := string(prefix) + body
	if n != int64(len(want)) {
		t.Errorf("Deliver returned size %d, want %d", n, len(want))
	}
	box := filepath.Join(data, "mail", "example.test", "alice")
	names := listDir(t, filepath.Join(box, "new"))
	if len(names) != 1 {
		t.Fatalf("new/ holds %v, want one message", names)
	}
	m := maildirName.FindStringSubmatch(names[0])
	if m == nil || m[1] != fmt.Sprint(len(want)) {
		t.Errorf("message file name %q is not a Maildir name with S=%d", names[0], len(want))
	}
	got, err := os.ReadFile(filepath.Join(box, "new", names[0]))
	if err != nil || string(got) != want {
		t.Errorf("message file holds %q (%v), want %q", got, err, want)
	}
	if tmp := listDir(t, filepath.Join(box, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ not empty after delivery: %v", tmp)
	}
	if fi, err := os.Stat(filepath.Join(box, "cur")); err != nil || !fi.IsDir() {
		t.Errorf("cur/ missing: %v", err)
	}
}

func TestDeliverSeveralMailboxes(t *testing.T) { bothWays(t, testDeliverSeveralMailboxes) }

func testDeliverSeveralMailboxes(t *testing.T) {
	s, data := openTestStore(t)
	addrs := []string{"alice@example.test", "bob@example.test", "carol@other.test"}
	body := strings.Repeat("x", 100_000)
	if _, err := s.Deliver(context.Background(), addrs, nil, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	var inode uint64
	for i, a := range addrs {
		local, domain, _ := strings.Cut(a, "@")
		newDir := filepath.Join(data, "mail", domain, local, "new")
		names := listDir(t, newDir)
		if len(names) != 1 {
			t.Fatalf("%s: new/ holds %v, want one message", a, names)
		}
		p := filepath.Join(newDir, names[0])
		if got, _ := os.ReadFile(p); string(got) != body {
			t.Errorf("%s: copy differs from the message", a)
		}
		fi, _ := os.Stat(p)
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if i == 0 {
			inode = ino
		} else if ino != inode {
			t.Errorf("%s: copy is not a hard link of the first (inode %d, want %d)", a, ino, inode)
		}
	}
}

type failingReader struct{ after int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.after <= 0 {
		return 0, errors.New("connection reset")
	}
	n := min(len(p), r.after)
	for i := range n {
		p[i] = 'a'
	}
	r.after -= n
	return n, nil
}

func TestDeliverAllOrNothing(t *testing.T) { bothWays(t, testDeliverAllOrNothing) }

func testDeliverAllOrNothing(t *testing.T) {
	t.Run("body fails", func(t *testing.T) {
		s, data := openTestStore(t)
		_, err := s.Deliver(context.Background(), []string{"a@example.test", "b@example.test"}, nil, &failingReader{after: 5000})
		if err == nil {
			t.Fatal("Deliver succeeded although the body failed")
		}
		for _, l := range []string{"a", "b"} {
			for _, sub := range []string{"new", "tmp", "cur"} {
				if names := listDir(t, filepath.Join(data, "mail", "example.test", l, sub)); len(names) != 0 {
					t.Errorf("%s/%s holds %v after a failed delivery", l, sub, names)
				}
			}
		}
	})
	t.Run("second mailbox broken", func(t *testing.T) {
		s, data := openTestStore(t)
		bobNew := filepath.Join(data, "mail", "example.test", "bob", "new")
		if err := os.MkdirAll(filepath.Dir(bobNew), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bobNew, []byte("not a directory"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := s.Deliver(context.Background(), []string{"alice@example.test", "bob@example.test"}, nil, strings.NewReader("Subject: x\r\n\r\n"))
		if err == nil {
			t.Fatal("Deliver succeeded although bob's new/ is not a directory")
		}
		for _, sub := range []string{"new", "tmp"} {
			if names := listDir(t, filepath.Join(data, "mail", "example.test", "alice", sub)); len(names) != 0 {
				t.Errorf("alice/%s holds %v after a failed delivery", sub, names)
			}
		}
		if names := listDir(t, filepath.Join(data, "mail", "example.test", "bob", "tmp")); len(names) != 0 {
			t.Errorf("bob/tmp holds %v after a failed delivery", names)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		s, data := openTestStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Deliver(ctx, []string{"a@example.test"}, nil, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Deliver with a cancelled context returned %v", err)
		}
		if names := listDir(t, filepath.Join(data, "mail", "example.test", "a", "new")); len(names) != 0 {
			t.Errorf("new/ holds %v after a cancelled delivery", names)
		}
	})
}

func TestDeliverRejectsBadAddresses(t *testing.T) {
	s, data := openTestStore(t)
	for _, a := range []string{"", "alice", "@example.test", "alice@", "../x@example.test", "a@../etc", "a/b@example.test", ".hidden@example.test"} {
		if _, err := s.Deliver(context.Background(), []string{a}, nil, strings.NewReader("x")); !errors.Is(err, ErrBadAddress) {
			t.Errorf("Deliver to %q returned %v, want ErrBadAddress", a, err)
		}
	}
	if names := listDir(t, data); len(names) != 1 || names[0] != "mail" {
		t.Errorf("data dir holds %v, want only mail/", names)
	}
}

func TestDeliverConcurrent(t *testing.T) {
	s, data := openTestStore(t)
	const workers, each = 20, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf("Subject: %d-%d\r\n\r\nbody\r\n", w, i)
				if _, err := s.Deliver(context.Background(), []string{"alice@example.test", "bob@example.test"}, nil, strings.NewReader(body)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, l := range []string{"alice", "bob"} {
		dir := filepath.Join(data, "mail", "example.test", l, "new")
		names := listDir(t, dir)
		if len(names) != workers*each {
			t.Fatalf("%s has %d messages, want %d", l, len(names), workers*each)
		}
		subjects := map[string]bool{}
		for _, n := range names {
			b, _ := os.ReadFile(filepath.Join(dir, n))
			subjects[string(bytes.SplitN(b, []byte("\r\n"), 2)[0])] = true
		}
		if len(subjects) != workers*each {
			t.Errorf("%s has %d distinct messages, want %d", l, len(subjects), workers*each)
		}
	}
}

// bothWays runs a delivery test with anonymous files and with the tmp/ and rename fallback.
func bothWays(t *testing.T, test func(*testing.T)) {
	t.Run("anonymous", test)
	t.Run("named", func(t *testing.T) {
		anonymousFiles = false
		defer func() { anonymousFiles = true }()
		test(t)
	})
}

// waitFor polls cond until it holds or 30 s pass (generous: CI machines are loaded).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(time.Millisecond)
	}
}
