package durable

import (
	"os"
	"sync"
)

// GroupSync shares directory fsyncs among concurrent callers (group commit): many messages
// renamed or linked into one directory at about the same time are made durable by one fsync.
// A caller joins the pending round of its directory, which starts only after the running round
// (if any) ends, so the fsync a caller waits for always started after the caller's own change,
// and covers it: batching never skips one. The zero value is ready to use.
type GroupSync struct {
	dirs   sync.Map               // directory path -> *dirSyncer
	syncFn func(dir string) error // SyncDir; replaced in tests
}

// SyncDir fsyncs dir, sharing the fsync with concurrent callers for the same directory.
func (g *GroupSync) SyncDir(dir string) error {
	v, ok := g.dirs.Load(dir)
	if !ok {
		fn := g.syncFn
		if fn == nil {
			fn = SyncDir
		}
		v, _ = g.dirs.LoadOrStore(dir, &dirSyncer{dir: dir, syncFn: fn})
	}
	return v.(*dirSyncer).sync()
}

// Move is Move with the directory fsync shared.
func (g *GroupSync) Move(from, to string) error { return move(from, to, g.SyncDir) }

// Replace is Replace with the directory fsync shared.
func (g *GroupSync) Replace(path, tmp string, data []byte, perm os.FileMode) error {
	return replace(path, tmp, data, perm, g.SyncDir)
}

// Forget drops the state kept for dir, whose directory is gone.
func (g *GroupSync) Forget(dir string) { g.dirs.Delete(dir) }

type dirSyncer struct {
	dir     string
	syncFn  func(dir string) error
	mu      sync.Mutex
	running bool
	pending *syncRound
}

type syncRound struct {
	done    chan struct{}
	err     error
	callers int // callers served by the round
}

func (d *dirSyncer) sync() error {
	d.mu.Lock()
	if d.pending == nil {
		d.pending = &syncRound{done: make(chan struct{})}
	}
	r := d.pending
	r.callers++
	if !d.running {
		d.running = true
		d.pending = nil
		d.mu.Unlock()
		d.run(r)
	} else {
		d.mu.Unlock()
	}
	<-r.done
	return r.err
}

// run performs round r, then hands any round that gathered meanwhile to a new goroutine so the
// caller that ran r is not held up by later callers.
func (d *dirSyncer) run(r *syncRound) {
	r.err = d.syncFn(d.dir)
	close(r.done)
	d.mu.Lock()
	next := d.pending
	d.pending = nil
	if next == nil {
		d.running = false
	}
	d.mu.Unlock()
	if next != nil {
		go d.run(next)
	}
}
