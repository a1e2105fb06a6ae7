package imap

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kubemail/kubemail/mailserver/store"
)

var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Mailbox is read-only (EXAMINE)"}

func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	f, err := s.acct.Folder(name)
	if err != nil {
		return nil, s.folderError("selecting", err)
	}
	if err := f.Refresh(); err != nil {
		return nil, s.internal("selecting", err)
	}
	mt := s.srv.tracker(f)
	keywords := f.Keywords()
	var data imap.SelectData
	err = f.View(func(uidValidity, uidNext uint32, msgs []store.Message) {
		// The session tracker starts from exactly this state.
		s.st = mt.NewSession()
		data.NumMessages = uint32(len(msgs))
		data.UIDValidity = uidValidity
		data.UIDNext = imap.UID(uidNext)
		for i := range msgs {
			m := &msgs[i]
			if data.FirstUnseenSeqNum == 0 && !strings.Contains(m.Letters, string(store.FlagSeen)) {
				data.FirstUnseenSeqNum = uint32(i + 1)
			}
			for _, kw := range m.Keywords {
				if !slices.Contains(keywords, kw) {
					keywords = append(keywords, kw)
				}
			}
		}
		slices.Sort(keywords)
		data.Flags = toFlags(append(store.SystemFlags(), keywords...))
	})
	if err != nil {
		return nil, s.internal("selecting", err)
	}
	data.PermanentFlags = []imap.Flag{}
	if !options.ReadOnly {
		data.PermanentFlags = append(slices.Clone(data.Flags), imap.FlagWildcard)
	}
	s.folder, s.mt, s.readOnly, s.searchRes = f, mt, options.ReadOnly, nil
	return &data, nil
}

func (s *session) Unselect() error {
	if s.st != nil {
		s.st.Close()
	}
	s.folder, s.mt, s.st, s.searchRes = nil, nil, nil, nil
	return nil
}

// target is a message a command applies to.
type target struct {
	seq  uint32 // the client's sequence number
	msg  store.Message
	seen bool // marked \Seen by this FETCH
}

// targets resolves a sequence or UID set (with "*" and SEARCHRES "$") against the client's view
// of the selected folder. Messages the client has not been told about yet are left out.
func (s *session) targets(numSet imap.NumSet) ([]target, error) {
	var out []target
	err := s.folder.View(func(_, _ uint32, msgs []store.Message) {
		set := s.staticNumSet(numSet, msgs)
		for i := range msgs {
			seq := s.st.EncodeSeqNum(uint32(i + 1))
			if seq == 0 {
				continue
			}
			var in bool
			switch set := set.(type) {
			case imap.SeqSet:
				in = set.Contains(seq)
			case imap.UIDSet:
				in = set.Contains(imap.UID(msgs[i].UID))
			}
			if in {
				out = append(out, target{seq: seq, msg: msgs[i]})
			}
		}
	})
	if err != nil {
		return nil, s.internal("resolving messages", err)
	}
	return out, nil
}

// staticNumSet replaces "*" by the largest number in use and "$" by the saved search result
// (RFC 9051 9 seq-number, RFC 5182).
func (s *session) staticNumSet(numSet imap.NumSet, msgs []store.Message) imap.NumSet {
	if imap.IsSearchRes(numSet) {
		return s.searchRes
	}
	switch set := numSet.(type) {
	case imap.SeqSet:
		set = slices.Clone(set)
		for i := range set {
			staticRange(&set[i].Start, &set[i].Stop, uint32(len(msgs)))
		}
		return set
	case imap.UIDSet:
		set = slices.Clone(set)
		var last uint32
		if len(msgs) > 0 {
			last = msgs[len(msgs)-1].UID
		}
		for i := range set {
			staticRange((*uint32)(&set[i].Start), (*uint32)(&set[i].Stop), last)
		}
		return set
	}
	return numSet
}

func staticRange(start, stop *uint32, max uint32) {
	if *start == 0 {
		*start = max
	}
	if *stop == 0 {
		*stop = max
	}
	if *start > *stop {
		*start, *stop = *stop, *start
	}
}

func uids(ts []target) []uint32 {
	out := make([]uint32, len(ts))
	for i, t := range ts {
		out[i] = t.msg.UID
	}
	return out
}

func uidSet(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	return set
}

// Expunge removes messages flagged \Deleted (RFC 9051 6.4.3), only those in uids for UID
// EXPUNGE (RFC 4315 2.1). The EXPUNGE responses reach this session, like every other, through
// its tracker when imapserver polls after the command; CLOSE discards them.
func (s *session) Expunge(w *imapserver.ExpungeWriter, set *imap.UIDSet) error {
	if s.readOnly {
		if *w == (imapserver.ExpungeWriter{}) {
			return nil // CLOSE of an EXAMINEd mailbox expunges nothing (RFC 9051 6.4.1)
		}
		return errReadOnly
	}
	var match func(uint32) bool
	if set != nil {
		var static imap.UIDSet
		s.folder.View(func(_, _ uint32, msgs []store.Message) {
			static, _ = s.staticNumSet(*set, msgs).(imap.UIDSet)
		})
		match = func(uid uint32) bool { return static.Contains(imap.UID(uid)) }
	}
	if _, err := s.folder.Expunge(match); err != nil {
		return s.internal("expunging", err)
	}
	return nil
}

// Store changes flags (RFC 9051 6.4.6). Without .SILENT, this session gets the FETCH of each
// changed message through its tracker like every other session, so that an untagged FLAGS
// announcing a new keyword comes first (RFC 9051 7.3.5); messages whose flags did not change are
// answered directly.
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, _ *imap.StoreOptions) error {
	if s.readOnly {
		return errReadOnly
	}
	ts, err := s.targets(numSet)
	if err != nil {
		return err
	}
	op := map[imap.StoreFlagsOp]store.FlagOp{
		imap.StoreFlagsSet: store.FlagsSet, imap.StoreFlagsAdd: store.FlagsAdd, imap.StoreFlagsDel: store.FlagsRemove,
	}[flags.Op]
	before := make(map[uint32][]string, len(ts))
	for _, t := range ts {
		before[t.msg.UID] = t.msg.Flags()
	}
	type result struct {
		seq   uint32
		uid   uint32
		flags []string
	}
	var unchanged []result
	var origin any = s.st
	if !flags.Silent {
		origin = nil
	}
	err = s.folder.StoreFlags(uids(ts), op, fromFlags(flags.Flags), origin, func(seq uint32, m *store.Message) {
		now := m.Flags()
		if slices.Equal(now, before[m.UID]) {
			if c := s.st.EncodeSeqNum(seq); c != 0 {
				unchanged = append(unchanged, result{c, m.UID, now})
			}
		}
	})
	if err != nil {
		return s.internal("storing flags", err)
	}
	if flags.Silent {
		return nil
	}
	for _, r := range unchanged {
		rw := w.CreateMessage(r.seq)
		rw.WriteUID(imap.UID(r.uid))
		rw.WriteFlags(toFlags(r.flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Copy copies messages to another folder, or the same one (RFC 9051 6.4.7, RFC 4315 COPYUID).
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	destF, err := s.openFolder(dest)
	if err != nil {
		return nil, err
	}
	ts, err := s.targets(numSet)
	if err != nil {
		return nil, err
	}
	uidValidity, src, dst, err := s.folder.CopyTo(destF, uids(ts), s.quota())
	if isOverQuota(err) {
		var size int64
		for _, t := range ts {
			size += t.msg.Size
		}
		return nil, s.overQuota("COPY", size)
	}
	if err != nil {
		return nil, s.internal("copying", err)
	}
	if len(src) == 0 {
		return nil, nil
	}
	return &imap.CopyData{UIDValidity: uidValidity, SourceUIDs: uidSet(src), DestUIDs: uidSet(dst)}, nil
}

// Move moves messages (RFC 6851): COPYUID first, then the EXPUNGE responses, which come through
// the tracker when imapserver polls after the command.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	if s.readOnly {
		return errReadOnly
	}
	destF, err := s.openFolder(dest)
	if err != nil {
		return err
	}
	ts, err := s.targets(numSet)
	if err != nil {
		return err
	}
	uidValidity, src, dst, err := s.folder.MoveTo(destF, uids(ts))
	if err != nil {
		return s.internal("moving", err)
	}
	if len(src) == 0 {
		return nil
	}
	return w.WriteCopyData(&imap.CopyData{UIDValidity: uidValidity, SourceUIDs: uidSet(src), DestUIDs: uidSet(dst)})
}
