package imap

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/kubemail/kubemail/mailserver/store"
)

// maxSearchBody bounds how much of one message BODY and TEXT searches read.
const maxSearchBody = 32 << 20

// Search answers SEARCH and UID SEARCH (RFC 9051 6.4.4), with ESEARCH and SEARCHRES options
// written by imapserver. Flags, sizes and dates come from memory; header and body criteria read
// the message file, only when the cheaper criteria have matched.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	type candidate struct {
		seq uint32
		msg store.Message
	}
	var cands []candidate
	err := s.folder.View(func(_, _ uint32, msgs []store.Message) {
		s.staticCriteria(criteria, msgs)
		for i := range msgs {
			if seq := s.st.EncodeSeqNum(uint32(i + 1)); seq != 0 {
				cands = append(cands, candidate{seq, msgs[i]})
			}
		}
	})
	if err != nil {
		return nil, s.internal("searching", err)
	}
	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uids   imap.UIDSet
	)
	for _, c := range cands {
		m := &matcher{s: s, seq: c.seq, msg: &c.msg}
		ok := m.match(criteria)
		m.close()
		if !ok {
			continue
		}
		uids.AddNum(imap.UID(c.msg.UID))
		num := c.seq
		if kind == imapserver.NumKindUID {
			num = c.msg.UID
		} else {
			seqSet.AddNum(c.seq)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	if kind == imapserver.NumKindUID {
		data.All = uids
	} else {
		data.All = seqSet
	}
	if options.ReturnSave {
		s.searchRes = uids // RFC 5182: saved as UIDs, whatever the command
	}
	return &data, nil
}

// staticCriteria resolves "*" and "$" in the criteria's sets (recursively).
func (s *session) staticCriteria(c *imap.SearchCriteria, msgs []store.Message) {
	var seqs []imap.SeqSet
	for _, set := range c.SeqNum {
		switch set := s.staticNumSet(set, msgs).(type) {
		case imap.SeqSet:
			seqs = append(seqs, set)
		case imap.UIDSet: // "$"
			c.UID = append(c.UID, set)
		}
	}
	c.SeqNum = seqs
	for i, set := range c.UID {
		c.UID[i], _ = s.staticNumSet(set, msgs).(imap.UIDSet)
	}
	for i := range c.Not {
		s.staticCriteria(&c.Not[i], msgs)
	}
	for i := range c.Or {
		s.staticCriteria(&c.Or[i][0], msgs)
		s.staticCriteria(&c.Or[i][1], msgs)
	}
}

// matcher evaluates criteria against one message, opening its file at most once.
type matcher struct {
	s      *session
	seq    uint32
	msg    *store.Message
	file   *os.File
	failed bool
	header *mail.Header
}

func (m *matcher) close() {
	if m.file != nil {
		m.file.Close()
	}
}

func (m *matcher) open() bool {
	if m.file == nil && !m.failed {
		f, err := m.s.folder.Open(m.msg.UID)
		if err != nil {
			m.failed = true
			return false
		}
		m.file = f
	}
	if m.file == nil {
		return false
	}
	_, err := m.file.Seek(0, io.SeekStart)
	return err == nil
}

func (m *matcher) getHeader() *mail.Header {
	if m.header == nil {
		h := textproto.Header{}
		if m.open() {
			h, _ = textproto.ReadHeader(bufio.NewReader(m.file))
		}
		m.header = &mail.Header{Header: gomessage.Header{Header: h}}
	}
	return m.header
}

func (m *matcher) entity() *gomessage.Entity {
	if !m.open() {
		return nil
	}
	e, _ := gomessage.Read(io.LimitReader(m.file, maxSearchBody))
	return e
}

func (m *matcher) match(c *imap.SearchCriteria) bool {
	msg := m.msg
	for _, set := range c.SeqNum {
		if !set.Contains(m.seq) {
			return false
		}
	}
	for _, set := range c.UID {
		if !set.Contains(imap.UID(msg.UID)) {
			return false
		}
	}
	if !matchDate(msg.Date, c.Since, c.Before) {
		return false
	}
	for _, f := range c.Flag {
		if !msg.Has(string(f)) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if msg.Has(string(f)) {
			return false
		}
	}
	if (c.Larger != 0 && msg.Size <= c.Larger) || (c.Smaller != 0 && msg.Size >= c.Smaller) {
		return false
	}
	for _, not := range c.Not {
		if m.match(&not) {
			return false
		}
	}
	for _, or := range c.Or {
		if !m.match(&or[0]) && !m.match(&or[1]) {
			return false
		}
	}
	for _, hf := range c.Header {
		if !matchFields(m.getHeader().FieldsByKey(hf.Key), hf.Value) {
			return false
		}
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		// Without a usable Date: field, the internal date stands in (as in Dovecot).
		t, err := m.getHeader().Date()
		if err != nil || t.IsZero() {
			t = msg.Date
		}
		if !matchDate(t, c.SentSince, c.SentBefore) {
			return false
		}
	}
	for _, text := range c.Text {
		if !matchEntity(m.entity(), text, true) {
			return false
		}
	}
	for _, body := range c.Body {
		if !matchEntity(m.entity(), body, false) {
			return false
		}
	}
	return true
}

// matchDate compares dates only, ignoring time and zone (RFC 9051 6.4.4).
func matchDate(t, since, before time.Time) bool {
	t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && t.Before(since) {
		return false
	}
	return before.IsZero() || t.Before(before)
}

func matchFields(fields gomessage.HeaderFields, pattern string) bool {
	if pattern == "" {
		return fields.Len() > 0
	}
	pattern = strings.ToLower(pattern)
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		if strings.Contains(strings.ToLower(v), pattern) {
			return true
		}
	}
	return false
}

// matchEntity looks for pattern (case-insensitively) in the decoded text parts of e and, with
// includeHeader, in the header fields.
func matchEntity(e *gomessage.Entity, pattern string, includeHeader bool) bool {
	if e == nil {
		return false
	}
	if pattern == "" {
		return true
	}
	if includeHeader && matchFields(e.Header.Fields(), pattern) {
		return true
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			part, err := mr.NextPart()
			if err != nil {
				return false
			}
			if matchEntity(part, pattern, includeHeader) {
				return true
			}
		}
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return false
	}
	buf, _ := io.ReadAll(e.Body)
	return bytes.Contains(bytes.ToLower(buf), bytes.ToLower([]byte(pattern)))
}
