package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
)

// Status is a folder's summary for STATUS and SELECT.
type Status struct {
	Messages, Unseen, Deleted uint32
	UIDNext, UIDValidity      uint32
	Size                      int64
	FirstUnseen               uint32 // sequence number of the first message without \Seen, or 0
}

// Status returns the folder's summary after picking up changes.
func (f *Folder) Status() (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return Status{}, ErrFolderGone
	}
	if err := f.refreshLocked(); err != nil {
		return Status{}, err
	}
	st := Status{Messages: uint32(len(f.msgs)), UIDNext: f.uidNext, UIDValidity: f.uidValidity}
	for i := range f.msgs {
		m := &f.msgs[i]
		if strings.IndexByte(m.Letters, FlagSeen) < 0 {
			st.Unseen++
			if st.FirstUnseen == 0 {
				st.FirstUnseen = uint32(i + 1)
			}
		}
		if strings.IndexByte(m.Letters, FlagDeleted) >= 0 {
			st.Deleted++
		}
		st.Size += m.Size
	}
	return st, nil
}

// Append stores a message read from r with the given IMAP flags and internal date (now if zero)
// and returns its UID (RFC 4315 APPENDUID). The file is durable when Append returns. With quota >
// 0 (the mailbox's quota in bytes) a message that would take the mailbox past it is not stored:
// Append returns a *QuotaError (errors.Is ErrOverQuota).
func (f *Folder) Append(r io.Reader, flags []string, date time.Time, quota int64) (uidValidity, uid uint32, err error) {
	if date.IsZero() {
		date = time.Now()
	}
	if f.isGone() {
		return 0, 0, ErrFolderGone
	}
	base := uniqueBase(time.Now())
	tmp := filepath.Join(f.dir, "tmp", base)
	size, err := durable.WriteNew(tmp, 0o600, nil, r)
	if err != nil {
		return 0, 0, f.goneOr(fmt.Errorf("store: %w", err))
	}
	defer os.Remove(tmp) // a no-op once renamed
	if err := os.Chtimes(tmp, date, date); err != nil {
		return 0, 0, f.goneOr(fmt.Errorf("store: setting internal date: %w", err))
	}
	c, err := f.s.beginCharge(f.mb, size, quota)
	if err != nil {
		return 0, 0, err
	}
	letters, keywords := splitFlags(flags)
	m := Message{Letters: letters, Keywords: keywords, Size: size, Date: date, base: withSize(base, size)}
	m.file = curName(m.base, letters)
	uidValidity, uids, err := f.commit([]string{tmp}, []Message{m})
	if err != nil {
		c.end(false, 0, 0)
		return 0, 0, err
	}
	c.end(true, size, 1)
	return uidValidity, uids[0], nil
}

// commit renames tmp files into cur/ as msgs (whose file names are set), fsyncs cur/, gives
// them UIDs, writes the index and reports them. It returns the UIDVALIDITY and the new UIDs.
func (f *Folder) commit(tmps []string, msgs []Message) (uint32, []uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return 0, nil, ErrFolderGone
	}
	// Mail waiting in new/ arrived first: give it its UIDs before these.
	if err := f.refreshLocked(); err != nil {
		return 0, nil, err
	}
	cur := filepath.Join(f.dir, "cur")
	for i, t := range tmps {
		if err := os.Rename(t, filepath.Join(cur, msgs[i].file)); err != nil {
			for _, m := range msgs[:i] {
				os.Remove(filepath.Join(cur, m.file))
			}
			return 0, nil, fmt.Errorf("store: moving message into cur/: %w", err)
		}
	}
	if err := f.s.dirSyncs.SyncDir(cur); err != nil {
		return 0, nil, err
	}
	uids := make([]uint32, len(msgs))
	for i := range msgs {
		f.noteKeywordsLocked(msgs[i].Keywords)
		msgs[i].UID = f.uidNext
		uids[i] = f.uidNext
		f.uidNext++
	}
	f.msgs = append(f.msgs, msgs...)
	if err := f.writeIndexLocked(); err != nil {
		return 0, nil, err
	}
	if f.observer != nil {
		f.observer.Appended(uint32(len(f.msgs)))
	}
	f.stampLocked()
	return f.uidValidity, uids, nil
}

// StoreFlags changes the flags of the messages with the given UIDs (missing ones are skipped)
// and calls fn, under the folder's lock, for each of them with its sequence number and new
// state. Observers get the changes with origin.
func (f *Folder) StoreFlags(uids []uint32, op FlagOp, flags []string, origin any, fn func(seq uint32, m *Message)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return ErrFolderGone
	}
	cur := filepath.Join(f.dir, "cur")
	keywordsChanged := false
	for _, uid := range uids {
		i := f.findLocked(uid)
		if i < 0 {
			continue
		}
		m := &f.msgs[i]
		letters, keywords := applyFlags(m.Letters, m.Keywords, op, flags)
		changed := false
		if letters != m.Letters {
			file := curName(m.base, letters)
			if err := os.Rename(filepath.Join(cur, m.file), filepath.Join(cur, file)); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue // expunged by another process; the next scan reports it
				}
				return fmt.Errorf("store: changing flags: %w", err)
			}
			m.file, m.Letters, changed = file, letters, true
		}
		if !slices.Equal(keywords, m.Keywords) {
			f.noteKeywordsLocked(keywords)
			m.Keywords, changed, keywordsChanged = keywords, true, true
		}
		if changed && f.observer != nil {
			f.observer.FlagsChanged(uint32(i+1), m.UID, m.Flags(), origin)
		}
		if fn != nil {
			fn(uint32(i+1), m)
		}
	}
	f.stampLocked()
	if keywordsChanged {
		return f.writeIndexLocked()
	}
	return nil
}

// Expunge removes the messages flagged \Deleted, only those whose UID is in uids when uids is
// not nil (RFC 4315 UID EXPUNGE), and returns their UIDs. Observers get each expunge.
func (f *Folder) Expunge(uids func(uid uint32) bool) ([]uint32, error) {
	return f.expunge(func(m *Message) bool {
		return strings.IndexByte(m.Letters, FlagDeleted) >= 0 && (uids == nil || uids(m.UID))
	})
}

func (f *Folder) expunge(match func(m *Message) bool) (_ []uint32, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return nil, ErrFolderGone
	}
	c, err := f.s.beginCharge(f.mb, 0, 0)
	if err != nil {
		return nil, err
	}
	var freed, removed int64
	defer func() { c.end(err == nil, -freed, -removed) }()
	cur := filepath.Join(f.dir, "cur")
	var gone []uint32
	for i := len(f.msgs) - 1; i >= 0; i-- {
		m := &f.msgs[i]
		if !match(m) {
			continue
		}
		if err := os.Remove(filepath.Join(cur, m.file)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return gone, fmt.Errorf("store: expunging: %w", err)
		}
		freed += m.Size
		removed++
		gone = append(gone, m.UID)
		f.msgs = append(f.msgs[:i], f.msgs[i+1:]...)
		if f.observer != nil {
			f.observer.Expunged(uint32(i + 1))
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	slices.Reverse(gone)
	f.stampLocked()
	return gone, f.writeIndexLocked()
}

// CopyTo copies the messages with the given UIDs (missing ones are skipped) into dest, keeping
// flags, keywords and internal dates, and returns dest's UIDVALIDITY with the source UIDs and
// the UIDs they got (RFC 4315 COPYUID). dest may be f itself. With quota > 0 (the quota of dest's
// mailbox in bytes), copies that would take the mailbox past it are not made: CopyTo returns a
// *QuotaError and copies nothing.
func (f *Folder) CopyTo(dest *Folder, uids []uint32, quota int64) (uidValidity uint32, srcUIDs, destUIDs []uint32, err error) {
	type source struct {
		path string
		m    Message
	}
	var srcs []source
	f.mu.Lock()
	if f.gone {
		f.mu.Unlock()
		return 0, nil, nil, ErrFolderGone
	}
	for _, uid := range uids {
		if i := f.findLocked(uid); i >= 0 {
			m := f.msgs[i]
			m.Keywords = slices.Clone(m.Keywords)
			srcs = append(srcs, source{filepath.Join(f.dir, "cur", m.file), m})
		}
	}
	f.mu.Unlock()

	var want int64
	for _, src := range srcs {
		want += src.m.Size
	}
	c, err := f.s.beginCharge(dest.mb, want, quota)
	if err != nil {
		return 0, nil, nil, err
	}
	var added int64
	defer func() {
		if err != nil {
			c.end(false, 0, 0)
		} else {
			c.end(true, added, int64(len(destUIDs)))
		}
	}()
	var tmps []string
	defer func() {
		for _, t := range tmps {
			os.Remove(t)
		}
	}()
	var msgs []Message
	for _, src := range srcs {
		base := withSize(uniqueBase(time.Now()), src.m.Size)
		tmp := filepath.Join(dest.dir, "tmp", base)
		found, err := f.linkOrCopy(src.m.UID, src.path, tmp, src.m.Date)
		if err != nil {
			return 0, nil, nil, err
		}
		if !found {
			continue // expunged meanwhile
		}
		tmps = append(tmps, tmp)
		m := src.m
		m.base, m.file = base, curName(base, m.Letters)
		msgs = append(msgs, m)
		srcUIDs = append(srcUIDs, src.m.UID)
	}
	if len(msgs) == 0 {
		return dest.UIDValidity(), nil, nil, nil
	}
	uidValidity, destUIDs, err = dest.commit(tmps, msgs)
	if err != nil {
		return 0, nil, nil, err
	}
	for _, m := range msgs {
		added += m.Size
	}
	return uidValidity, srcUIDs, destUIDs, nil
}

// linkOrCopy makes tmp a hard link to (or else a copy of) message uid, whose file was at path.
// When another session renamed the file meanwhile (flags), it looks the name up again; it
// returns false if the message is gone.
func (f *Folder) linkOrCopy(uid uint32, path, tmp string, date time.Time) (bool, error) {
	for range 5 {
		err := os.Link(path, tmp)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			if err := copyFileSynced(path, tmp); err == nil {
				os.Chtimes(tmp, date, date)
				return true, nil
			} else if !errors.Is(err, os.ErrNotExist) {
				return false, err
			}
			os.Remove(tmp)
		}
		f.mu.Lock()
		i := f.findLocked(uid)
		if i >= 0 {
			path = filepath.Join(f.dir, "cur", f.msgs[i].file)
		}
		f.mu.Unlock()
		if i < 0 {
			return false, nil
		}
	}
	return false, fmt.Errorf("store: copying message %d: its file keeps changing name", uid)
}

// MoveTo moves the messages with the given UIDs into dest (RFC 6851): copies them, then expunges
// them from f. A crash in between leaves both copies, never none. A move within one mailbox does
// not change what it holds, so it is never refused for the quota: a user over quota can still
// move mail to Trash (as Dovecot allows).
func (f *Folder) MoveTo(dest *Folder, uids []uint32) (uidValidity uint32, srcUIDs, destUIDs []uint32, err error) {
	uidValidity, srcUIDs, destUIDs, err = f.CopyTo(dest, uids, 0)
	if err != nil || len(srcUIDs) == 0 {
		return uidValidity, srcUIDs, destUIDs, err
	}
	moved := make(map[uint32]bool, len(srcUIDs))
	for _, u := range srcUIDs {
		moved[u] = true
	}
	_, err = f.expunge(func(m *Message) bool { return moved[m.UID] })
	return uidValidity, srcUIDs, destUIDs, err
}

// isGone says whether the folder was deleted, renamed or removed with its mailbox.
func (f *Folder) isGone() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gone
}

// goneOr returns ErrFolderGone if the folder went away (err then comes from its directory having
// gone), else err.
func (f *Folder) goneOr(err error) error {
	if f.isGone() {
		return ErrFolderGone
	}
	return err
}

// UIDValidity returns the folder's UIDVALIDITY.
func (f *Folder) UIDValidity() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uidValidity
}
