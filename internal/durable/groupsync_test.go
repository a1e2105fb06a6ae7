package durable

import (
	"errors"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestGroupCommit checks the group commit contract: callers that arrive while an fsync runs are
// served together by one later fsync, and none returns before an fsync that started after it
// called.
func TestGroupCommit(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	d := &dirSyncer{dir: "x", syncFn: func(string) error {
		calls.Add(1)
		started <- struct{}{}
		<-release
		return nil
	}}
	firstDone := make(chan error, 1)
	go func() { firstDone <- d.sync() }()
	<-started // round 1 is running

	const late = 5
	lateDone := make(chan error, late)
	for range late {
		go func() { lateDone <- d.sync() }()
	}
	waitFor(t, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.pending != nil && d.pending.callers == late
	})
	select {
	case <-lateDone:
		t.Fatal("a caller returned before any fsync that started after its call")
	default:
	}
	release <- struct{}{} // finish round 1
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	<-started // round 2 started after the late callers
	select {
	case <-lateDone:
		t.Fatal("a late caller returned before its fsync ended")
	default:
	}
	close(release)
	for range late {
		if err := <-lateDone; err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d fsyncs for %d callers, want them grouped", n, late+1)
	}
}

func TestGroupCommitReportsErrors(t *testing.T) {
	d := &dirSyncer{dir: "x", syncFn: func(string) error { return io.ErrShortWrite }}
	if err := d.sync(); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("sync returned %v, want the fsync error", err)
	}
}

// waitFor polls cond until it holds or 30 s pass.
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

func TestGroupSyncOnDisk(t *testing.T) {
	var g GroupSync
	dir := t.TempDir()
	if err := g.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := g.SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("SyncDir of a missing directory succeeded")
	}
}
