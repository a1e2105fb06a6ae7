package store

import (
	"sync"

	"github.com/kubemail/kubemail/internal/durable"
)

// dirSyncer batches fsyncs of one directory across concurrent callers (group commit). A caller
// joins the pending round, which starts only after the running one (if any) ends; so the fsync
// a caller waits for always started after the caller's own rename, and covers it.
type dirSyncer struct {
	dir     string
	syncFn  func(dir string) error // syncDir; replaced in tests
	mu      sync.Mutex
	running bool
	pending *syncRound
}

type syncRound struct {
	done    chan struct{}
	err     error
	callers int // callers served by the round
}

// syncDirGrouped fsyncs dir, sharing the fsync with concurrent callers for the same directory.
func (s *Store) syncDirGrouped(dir string) error {
	v, ok := s.dirSyncs.Load(dir)
	if !ok {
		v, _ = s.dirSyncs.LoadOrStore(dir, &dirSyncer{dir: dir, syncFn: durable.SyncDir})
	}
	return v.(*dirSyncer).sync()
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
