package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoMessage is returned for a UID that is not (or no longer) in the folder.
var ErrNoMessage = errors.New("store: no such message")

// ErrFolderGone is returned by a Folder that was deleted or renamed while open.
var ErrFolderGone = errors.New("store: folder was deleted or renamed")

// Message is what the store keeps in memory about one message, so that FLAGS, UID, sizes and
// dates need no file access.
type Message struct {
	UID      uint32
	Letters  string   // Maildir flag letters, sorted
	Keywords []string // IMAP keywords
	Size     int64    // RFC822.SIZE: the file size
	Date     time.Time

	base string // Maildir base name, the index key
	file string // current file name in cur/
}

// Observer receives a folder's changes in order, under the folder's lock; sequence numbers are
// those of the folder at the moment of the change (RFC 9051 2.3.1.2). It must not call back
// into the folder.
type Observer interface {
	// Appended reports that messages were added; total is the new message count.
	Appended(total uint32)
	// Expunged reports that the message with sequence number seq was removed.
	Expunged(seq uint32)
	// FlagsChanged reports new flags of a message. origin is what the change's caller passed
	// (nil for changes from deliveries and other processes).
	FlagsChanged(seq, uid uint32, flags []string, origin any)
	// KeywordsDefined reports that the folder's set of keywords grew: keywords is the whole set,
	// for an untagged FLAGS response (RFC 9051 7.3.5), sent before any message shows a new one.
	KeywordsDefined(keywords []string)
}

// Folder is one folder (a Maildir) of one mailbox. One Folder exists per folder and store, shared
// by every session that opens it; all methods are safe for concurrent use.
type Folder struct {
	s       *Store
	mb      *mailbox // the life of the mailbox it belongs to
	address string
	name    string // IMAP name
	dir     string

	mu          sync.Mutex
	gone        bool
	uidValidity uint32
	uidNext     uint32
	msgs        []Message // in UID order: msgs[i] has sequence number i+1
	curStamp    time.Time // mtime of cur/ after our last scan or change
	newStamp    time.Time
	racyUntil   time.Time // when a stamp may be shared by a later change: rescan once after it
	keywords    []string  // every keyword seen in the folder since it was loaded, sorted
	attachment  any
	observer    Observer
	scanQueued  atomic.Bool
}

// Name returns the folder's IMAP name.
func (f *Folder) Name() string { return f.name }

// load reads the index and reconciles it with the directory, rebuilding it if needed.
func (f *Folder) load() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	idx, err := readIndex(f.dir)
	var seed *dovecotSeed
	switch {
	case err == nil:
		f.uidValidity, f.uidNext = idx.uidValidity, idx.uidNext
		f.msgs = make([]Message, 0, len(idx.entries))
		for _, e := range idx.entries {
			f.msgs = append(f.msgs, Message{UID: e.uid, Keywords: e.keywords, Date: e.date, base: e.base})
		}
	case errors.Is(err, os.ErrNotExist):
		seed = f.seedFromDovecotLocked() // or afresh with a new UIDVALIDITY
	default:
		f.uidValidity, f.uidNext = f.s.newUIDValidity(), 1
		f.s.logger.Warn("Rebuilt damaged folder index with a new UIDVALIDITY",
			"mailbox", f.address, "folder", f.name, "error", err, "uidValidity", f.uidValidity)
	}
	dirty := err != nil
	if err := f.scanLocked(true, &dirty); err != nil {
		return err
	}
	f.finishDovecotSeedLocked(seed)
	for i := range f.msgs {
		f.noteKeywordsLocked(f.msgs[i].Keywords)
	}
	if dirty {
		return f.writeIndexLocked()
	}
	return nil
}

// scanLocked reconciles the in-memory list with the directory: with full it lists cur/ (finding
// messages expunged, flagged or added by other processes); it always moves new mail from new/ to
// cur/ and gives it UIDs. dirty is set when the index must be written.
func (f *Folder) scanLocked(full bool, dirty *bool) error {
	var added []Message
	if full {
		outside := false // another process added or removed messages: recount the quota usage
		defer func() {
			if outside {
				f.mb.markStale()
			}
		}()
		names, err := readNames(filepath.Join(f.dir, "cur"))
		if err != nil {
			return err
		}
		onDisk := make(map[string]string, len(names)) // base -> file name
		for _, n := range names {
			base, _ := splitInfo(n)
			onDisk[base] = n
		}
		for i := len(f.msgs) - 1; i >= 0; i-- {
			m := &f.msgs[i]
			file, ok := onDisk[m.base]
			if !ok {
				f.msgs = append(f.msgs[:i], f.msgs[i+1:]...)
				*dirty, outside = true, true
				if f.observer != nil {
					f.observer.Expunged(uint32(i + 1))
				}
				continue
			}
			delete(onDisk, m.base)
			if m.file == "" {
				m.file = file
				_, m.Letters = splitInfo(file)
				m.Letters = normFlags(m.Letters)
				f.fillSize(m, "cur")
			} else if file != m.file {
				m.file = file
				_, letters := splitInfo(file)
				if letters = normFlags(letters); letters != m.Letters {
					m.Letters = letters
					if f.observer != nil {
						f.observer.FlagsChanged(uint32(i+1), m.UID, m.Flags(), nil)
					}
				}
			}
		}
		for base, file := range onDisk {
			m := Message{base: base, file: file}
			_, m.Letters = splitInfo(file)
			m.Letters = normFlags(m.Letters)
			if f.fillSize(&m, "cur") {
				added = append(added, m)
				outside = true
			}
		}
	}
	names, err := readNames(filepath.Join(f.dir, "new"))
	if err != nil {
		return err
	}
	for _, n := range names {
		base, _ := splitInfo(n)
		m := Message{base: base, file: curName(base, "")}
		if err := os.Rename(filepath.Join(f.dir, "new", n), filepath.Join(f.dir, "cur", m.file)); err != nil {
			continue // taken by another reader; a full scan finds it in cur/
		}
		if f.fillSize(&m, "cur") {
			added = append(added, m)
		}
	}
	if len(added) > 0 {
		sort.Slice(added, func(i, j int) bool {
			if !added[i].Date.Equal(added[j].Date) {
				return added[i].Date.Before(added[j].Date)
			}
			return compareBases(added[i].base, added[j].base) < 0
		})
		for i := range added {
			added[i].UID = f.uidNext
			f.uidNext++
		}
		f.msgs = append(f.msgs, added...)
		*dirty = true
		if f.observer != nil {
			f.observer.Appended(uint32(len(f.msgs)))
		}
	}
	f.stampLocked()
	return nil
}

// fillSize sets a message's size (from its name, else a stat) and, if unset, its date. It
// returns false if the file vanished.
func (f *Folder) fillSize(m *Message, sub string) bool {
	size, ok := sizeFromName(m.file)
	if ok && !m.Date.IsZero() {
		m.Size = size
		return true
	}
	fi, err := os.Stat(filepath.Join(f.dir, sub, m.file))
	if err != nil {
		return false
	}
	if !ok {
		size = fi.Size()
	}
	m.Size = size
	if m.Date.IsZero() {
		m.Date = fi.ModTime()
	}
	return true
}

// racyWindow bounds how coarse a filesystem's directory timestamps may be: a change by another
// process within the same tick as our last scan leaves the mtime as we recorded it. Linux before
// 6.13 stamps with the jiffy clock (4 ms at HZ=250), some NFS servers and FAT with seconds.
var racyWindow = 2 * time.Second

// stampLocked records the directories' mtimes, so Refresh can tell later changes by others.
// A stamp younger than racyWindow is racy (git's rule; Dovecot's too): the first Refresh after
// the window has passed rescans once even if the mtime has not moved, so a change that shared
// the tick is found then. That is at most one extra scan per burst of changes.
func (f *Folder) stampLocked() {
	now := time.Now()
	f.racyUntil = time.Time{}
	stamp := func(sub string, into *time.Time) {
		fi, err := os.Stat(filepath.Join(f.dir, sub))
		if err != nil {
			return
		}
		*into = fi.ModTime()
		if until := into.Add(racyWindow); now.Before(until) && until.After(f.racyUntil) {
			f.racyUntil = until
		}
	}
	stamp("cur", &f.curStamp)
	stamp("new", &f.newStamp)
}

func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("store: listing %s: %w", dir, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("store: listing %s: %w", dir, err)
	}
	out := names[:0]
	for _, n := range names {
		if n != "" && n[0] != '.' {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f *Folder) writeIndexLocked() error {
	idx := indexFile{uidValidity: f.uidValidity, uidNext: f.uidNext, entries: make([]indexEntry, len(f.msgs))}
	for i, m := range f.msgs {
		idx.entries[i] = indexEntry{uid: m.UID, base: m.base, date: m.Date, keywords: m.Keywords}
	}
	return writeIndex(f.dir, &idx)
}

// Refresh picks up changes: new mail, and changes by other processes when a directory's mtime
// moved since the last scan. IMAP sessions call it on every poll (NOOP, after each command).
func (f *Folder) Refresh() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return ErrFolderGone
	}
	return f.refreshLocked()
}

func (f *Folder) refreshLocked() error {
	cur, errCur := os.Stat(filepath.Join(f.dir, "cur"))
	nw, errNew := os.Stat(filepath.Join(f.dir, "new"))
	if errCur != nil || errNew != nil {
		return errors.Join(errCur, errNew)
	}
	full := !cur.ModTime().Equal(f.curStamp) ||
		!f.racyUntil.IsZero() && !time.Now().Before(f.racyUntil) // a racy stamp: check once
	if !full && nw.ModTime().Equal(f.newStamp) {
		return nil
	}
	dirty := false
	if err := f.scanLocked(full, &dirty); err != nil {
		return err
	}
	if dirty {
		return f.writeIndexLocked()
	}
	return nil
}

// poke schedules a scan of new/ soon, at most one queued at a time.
func (f *Folder) poke() {
	if !f.scanQueued.CompareAndSwap(false, true) {
		return
	}
	go func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.scanQueued.Store(false)
		if f.gone {
			return
		}
		dirty := false
		err := f.scanLocked(false, &dirty)
		if err == nil && dirty {
			err = f.writeIndexLocked()
		}
		if err != nil {
			f.s.logger.Error("Failed to pick up new mail", "mailbox", f.address, "folder", f.name, "error", err)
		}
	}()
}

// View calls fn under the folder's lock with its state; msgs[i] has sequence number i+1. fn must
// not keep msgs nor call the folder.
func (f *Folder) View(fn func(uidValidity, uidNext uint32, msgs []Message)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return ErrFolderGone
	}
	fn(f.uidValidity, f.uidNext, f.msgs)
	return nil
}

// findLocked returns the index of uid in msgs, or -1.
func (f *Folder) findLocked(uid uint32) int {
	i := sort.Search(len(f.msgs), func(i int) bool { return f.msgs[i].UID >= uid })
	if i < len(f.msgs) && f.msgs[i].UID == uid {
		return i
	}
	return -1
}

// Open opens the file of message uid for reading.
func (f *Folder) Open(uid uint32) (*os.File, error) {
	for range 3 {
		f.mu.Lock()
		if f.gone {
			f.mu.Unlock()
			return nil, ErrFolderGone
		}
		i := f.findLocked(uid)
		var path string
		if i >= 0 {
			path = filepath.Join(f.dir, "cur", f.msgs[i].file)
		}
		f.mu.Unlock()
		if i < 0 {
			return nil, ErrNoMessage
		}
		file, err := os.Open(path)
		if err == nil {
			return file, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("store: opening message: %w", err)
		}
		// Renamed by another process (flags) since we looked: rescan and retry.
		f.mu.Lock()
		if f.gone {
			f.mu.Unlock()
			return nil, ErrFolderGone
		}
		dirty := false
		err = f.scanLocked(true, &dirty)
		if err == nil && dirty {
			err = f.writeIndexLocked()
		}
		f.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return nil, ErrNoMessage
}
