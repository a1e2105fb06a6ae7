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

const quotaUser = "alice@example.test"

func usageOf(t *testing.T, s *Store, mailbox string) Usage {
	t.Helper()
	u, err := s.Usage(mailbox)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// onDisk counts a mailbox by walking it afresh: what a recount would find.
func onDisk(t *testing.T, data, mailbox string) Usage {
	t.Helper()
	local, domain, _ := strings.Cut(mailbox, "@")
	u, err := countMailbox(filepath.Join(data, "mail", domain, local))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func body(n int) string {
	return "Subject: q\r\n\r\n" + strings.Repeat("x", n-len("Subject: q\r\n\r\n"))
}

func expungeAll(t *testing.T, f *Folder) {
	t.Helper()
	var uids []uint32
	for _, m := range messages(t, f) {
		uids = append(uids, m.UID)
	}
	if err := f.StoreFlags(uids, FlagsAdd, []string{`\Deleted`}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Expunge(nil); err != nil {
		t.Fatal(err)
	}
}

// The count covers every folder, follows deliveries, appends, copies, moves, expunges and folder
// deletion, and a reopened store (a restart) counts the same.
func TestUsageFollowsEveryOperationAndSurvivesRestart(t *testing.T) {
	s, data := openTestStore(t)
	acct, err := s.Account(quotaUser)
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{}
	check := func(when string) {
		t.Helper()
		if got := usageOf(t, s, quotaUser); got != want {
			t.Errorf("%s: usage %+v, want %+v", when, got, want)
		}
		if got := onDisk(t, data, quotaUser); got != want {
			t.Errorf("%s: the files hold %+v, want %+v", when, got, want)
		}
	}
	check("empty")
	for range 3 {
		deliver(t, s, quotaUser, body(1000))
	}
	want = Usage{3000, 3}
	check("after 3 deliveries")

	sent, _ := acct.Folder("Sent")
	if _, _, err := sent.Append(strings.NewReader(body(500)), nil, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	want = Usage{3500, 4}
	check("after an append")

	inbox, _ := acct.Folder("INBOX")
	if err := inbox.Refresh(); err != nil {
		t.Fatal(err)
	}
	uids := []uint32{messages(t, inbox)[0].UID}
	archive, _ := acct.Folder("Archive")
	if _, _, _, err := inbox.CopyTo(archive, uids, 0); err != nil {
		t.Fatal(err)
	}
	want = Usage{4500, 5}
	check("after a copy")
	if _, _, _, err := inbox.MoveTo(sent, uids); err != nil {
		t.Fatal(err)
	}
	check("after a move")
	if err := acct.Rename("Archive", "Old.Archive"); err != nil {
		t.Fatal(err)
	}
	check("after renaming a folder")

	s2, err := Open(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := usageOf(t, s2, quotaUser); got != want {
		t.Errorf("after a restart: usage %+v, want %+v", got, want)
	}

	expungeAll(t, inbox)
	want = Usage{2500, 3}
	check("after expunging the INBOX")
	if err := acct.Delete("Sent"); err != nil {
		t.Fatal(err)
	}
	want = Usage{1000, 1}
	check("after deleting Sent")
}

// DeliverWithQuota refuses, all or nothing, a message that would take any mailbox past its
// quota; Deliver still delivers (the server's own notices).
func TestDeliverWithQuota(t *testing.T) { bothWays(t, testDeliverWithQuota) }

func testDeliverWithQuota(t *testing.T) {
	s, data := openTestStore(t)
	const bob = "bob@example.test"
	quotas := map[string]int64{quotaUser: 2500, bob: 0}
	quota := func(mb string) int64 { return quotas[mb] }
	ctx := context.Background()
	for i := range 2 {
		if _, err := s.DeliverWithQuota(ctx, []string{quotaUser, bob}, quota, nil, strings.NewReader(body(1000))); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	_, err := s.DeliverWithQuota(ctx, []string{"Alice@Example.test", bob}, quota, []byte("Received: x\r\n"), strings.NewReader(body(1000)))
	var qe *QuotaError
	if !errors.As(err, &qe) || !errors.Is(err, ErrOverQuota) {
		t.Fatalf("a third 1000-byte message for a 2500-byte quota: %v, want a QuotaError", err)
	}
	if !slices.Equal(qe.Mailboxes, []string{quotaUser}) || qe.Size != 1000+int64(len("Received: x\r\n")) {
		t.Errorf("QuotaError %+v, want alice alone and the stored size", qe)
	}
	for _, mb := range []string{quotaUser, bob} {
		if got := onDisk(t, data, mb); got != (Usage{2000, 2}) {
			t.Errorf("%s holds %+v after the refused delivery, want the first two only", mb, got)
		}
		local, _, _ := strings.Cut(mb, "@")
		if tmp := listDir(t, filepath.Join(data, "mail", "example.test", local, "tmp")); len(tmp) != 0 {
			t.Errorf("%s: tmp/ holds %v", mb, tmp)
		}
	}
	if _, err := s.DeliverWithQuota(ctx, []string{quotaUser}, quota, nil, strings.NewReader(body(500))); err != nil {
		t.Errorf("a message that fits exactly: %v", err)
	}
	if _, err := s.Deliver(ctx, []string{quotaUser}, nil, strings.NewReader(body(700))); err != nil {
		t.Errorf("Deliver (no quota check) of a notice: %v", err)
	}
	if got := usageOf(t, s, quotaUser); got != (Usage{3200, 4}) {
		t.Errorf("usage %+v, want 3200 bytes in 4 messages (over the quota through Deliver)", got)
	}
	if _, err := s.DeliverWithQuota(ctx, []string{quotaUser}, quota, nil, strings.NewReader(body(20))); !errors.Is(err, ErrOverQuota) {
		t.Errorf("a small message to a mailbox over its quota: %v, want ErrOverQuota", err)
	}
}

// Concurrent deliveries never pass the quota together, and the count stays exact while
// deliveries, appends and expunges run at once.
func TestConcurrentDeliveriesKeepTheCountExact(t *testing.T) {
	s, data := openTestStore(t)
	const size, fits = 1000, 37
	quota := func(string) int64 { return fits * size }
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 5 {
				_, err := s.DeliverWithQuota(context.Background(), []string{quotaUser}, quota, nil, strings.NewReader(body(size)))
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, ErrOverQuota):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if accepted.Load() != fits || refused.Load() != 100-fits {
		t.Errorf("%d accepted, %d refused; want %d and %d", accepted.Load(), refused.Load(), fits, 100-fits)
	}
	if got, disk := usageOf(t, s, quotaUser), onDisk(t, data, quotaUser); got != (Usage{fits * size, fits}) || disk != got {
		t.Errorf("usage %+v, files %+v; want %d messages of %d bytes", got, disk, fits, size)
	}

	acct, _ := s.Account(quotaUser)
	inbox, _ := acct.Folder("INBOX")
	drafts, _ := acct.Folder("Drafts")
	stop := make(chan struct{})
	var workers sync.WaitGroup
	workers.Go(func() { // the user keeps cleaning up the INBOX
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := inbox.Refresh(); err != nil {
				t.Error(err)
				return
			}
			var uids []uint32
			for _, m := range messages(t, inbox) {
				if m.UID%2 == 0 {
					uids = append(uids, m.UID)
				}
			}
			inbox.StoreFlags(uids, FlagsAdd, []string{`\Deleted`}, nil, nil)
			if _, err := inbox.Expunge(nil); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for w := range 8 {
		wg.Go(func() {
			for i := range 30 {
				var err error
				if w%2 == 0 {
					_, err = s.Deliver(context.Background(), []string{quotaUser}, nil, strings.NewReader(body(100+w*10+i)))
				} else {
					_, _, err = drafts.Append(strings.NewReader(body(100+w*10+i)), nil, time.Time{}, 0)
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	workers.Wait()
	if got, disk := usageOf(t, s, quotaUser), onDisk(t, data, quotaUser); got != disk {
		t.Errorf("after concurrent deliveries, appends and expunges: usage %+v, the files hold %+v", got, disk)
	}
}

// Append and CopyTo given a quota store nothing that would pass it; MoveTo is never refused, so
// a user over quota can still move mail to Trash.
func TestAppendAndCopyOverQuota(t *testing.T) {
	s, data := openTestStore(t)
	acct, _ := s.Account(quotaUser)
	drafts, _ := acct.Folder("Drafts")
	trash, _ := acct.Folder("Trash")
	const quota = 2000
	for range 2 {
		if _, _, err := drafts.Append(strings.NewReader(body(900)), nil, time.Time{}, quota); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := drafts.Append(strings.NewReader(body(300)), nil, time.Time{}, quota); !errors.Is(err, ErrOverQuota) {
		t.Errorf("Append past the quota: %v, want ErrOverQuota", err)
	}
	uids := []uint32{1, 2}
	if _, src, _, err := drafts.CopyTo(trash, uids, quota); !errors.Is(err, ErrOverQuota) || len(src) != 0 {
		t.Errorf("CopyTo past the quota: copied %v, %v; want nothing and ErrOverQuota", src, err)
	}
	if _, src, _, err := drafts.MoveTo(trash, uids); err != nil || len(src) != 2 {
		t.Errorf("MoveTo near the quota: moved %v, %v; want both", src, err)
	}
	want := Usage{1800, 2}
	if got, disk := usageOf(t, s, quotaUser), onDisk(t, data, quotaUser); got != want || disk != want {
		t.Errorf("usage %+v, files %+v; want %+v", got, disk, want)
	}
	if tmp := listDir(t, filepath.Join(data, "mail", "example.test", "alice", ".Drafts", "tmp")); len(tmp) != 0 {
		t.Errorf("Drafts/tmp holds %v after refused appends", tmp)
	}
}

// Changes made by other processes are counted: at once when a folder scan notices them, and at
// the next use once the count is old for those no scan sees. A maildirsize file left by another
// server is removed at the first count.
func TestOutsideChangesAreRecounted(t *testing.T) {
	s, data := openTestStore(t)
	box := filepath.Join(data, "mail", "example.test", "alice")
	if err := os.MkdirAll(box, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(box, "maildirsize"), []byte("1000S\n999999 99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		deliver(t, s, quotaUser, body(1000))
	}
	if _, err := os.Stat(filepath.Join(box, "maildirsize")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a stale maildirsize is still there (%v)", err)
	}
	acct, _ := s.Account(quotaUser)
	inbox, _ := acct.Folder("INBOX")
	if err := inbox.Refresh(); err != nil {
		t.Fatal(err)
	}

	// mutt deletes a message: the next scan of the folder sees it, and the count follows.
	files := listDir(t, filepath.Join(box, "cur"))
	if err := os.Remove(filepath.Join(box, "cur", files[0])); err != nil {
		t.Fatal(err)
	}
	bumpMtime(t, filepath.Join(box, "cur"))
	if err := inbox.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := usageOf(t, s, quotaUser); got != (Usage{2000, 2}) {
		t.Errorf("after mutt removed a message and a scan: usage %+v, want 2000 bytes in 2", got)
	}

	// A restore drops files (without S= in their names) into a folder nobody has open.
	restored := filepath.Join(box, ".Restored")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(restored, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		name := fmt.Sprintf("1700000000.R%d.backup:2,S", i)
		if err := os.WriteFile(filepath.Join(restored, "cur", name), []byte(body(250)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := usageOf(t, s, quotaUser); got != (Usage{2000, 2}) {
		t.Errorf("right after the restore: usage %+v, want the count kept until it is due", got)
	}
	defer func(d time.Duration) { recountInterval = d }(recountInterval)
	recountInterval = 0
	if got := usageOf(t, s, quotaUser); got != (Usage{3000, 6}) {
		t.Errorf("once a recount was due: usage %+v, want 3000 bytes in 6", got)
	}
}

// bumpMtime moves a directory's mtime, as the change of another process would on a coarse clock.
func bumpMtime(t *testing.T, dir string) {
	t.Helper()
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(dir, later, later); err != nil {
		t.Fatal(err)
	}
}
