package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Dovecot's per-folder files that seed a folder's first index (see "Migrating from Dovecot" in
// the package doc). They are read, never written or removed.
const (
	dovecotUIDList  = "dovecot-uidlist"
	dovecotKeywords = "dovecot-keywords"
)

// errUIDListDamaged means a dovecot-uidlist exists but cannot be used.
var errUIDListDamaged = errors.New("dovecot-uidlist damaged")

// dovecotSeed is what a folder's Dovecot files gave its first index.
type dovecotSeed struct {
	uidValidity uint32
	firstNew    uint32   // the uidnext the uidlist left: UIDs below it are Dovecot's
	keywords    []string // dovecot-keywords: index -> keyword ("" where unset)
}

// readUIDList reads dir's dovecot-uidlist: version 3 ("3 V<uidvalidity> N<uidnext> G<guid> …",
// then "<uid> [<ext> …] :<filename>") or version 1 ("1 <uidvalidity> <uidnext>", then "<uid>
// <filename>"). Entries carry the base name (before ':'), in UID order. It returns
// os.ErrNotExist if there is none and errUIDListDamaged (wrapped) if it cannot be used.
func readUIDList(dir string) (*indexFile, error) {
	data, err := os.ReadFile(filepath.Join(dir, dovecotUIDList))
	if err != nil {
		return nil, err
	}
	damaged := func(line int, why string) error {
		return fmt.Errorf("%w: line %d: %s", errUIDListDamaged, line, why)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return nil, damaged(1, "empty")
	}
	var idx indexFile
	header := strings.Fields(sc.Text())
	if len(header) == 0 {
		return nil, damaged(1, "bad header")
	}
	version := header[0]
	switch version {
	case "1":
		if len(header) < 3 {
			return nil, damaged(1, "bad version 1 header")
		}
		v, err1 := strconv.ParseUint(header[1], 10, 32)
		n, err2 := strconv.ParseUint(header[2], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, damaged(1, "bad version 1 header")
		}
		idx.uidValidity, idx.uidNext = uint32(v), uint32(n)
	case "3":
		for _, field := range header[1:] {
			var into *uint32
			switch field[0] {
			case 'V':
				into = &idx.uidValidity
			case 'N':
				into = &idx.uidNext
			default:
				continue // G<guid> and fields we do not use; their order does not matter
			}
			n, err := strconv.ParseUint(field[1:], 10, 32)
			if err != nil {
				return nil, damaged(1, "bad header field "+field)
			}
			*into = uint32(n)
		}
	default:
		return nil, damaged(1, "unknown version "+strconv.Quote(version))
	}
	if idx.uidValidity == 0 {
		return nil, damaged(1, "no UIDVALIDITY")
	}
	seen := make(map[string]bool)
	for n := 2; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		uidStr, rest, ok := strings.Cut(line, " ")
		uid, err := strconv.ParseUint(uidStr, 10, 32)
		if !ok || err != nil || uid == 0 || uid == math.MaxUint32 { // no UIDNEXT above it
			return nil, damaged(n, "bad UID")
		}
		name := rest
		if version == "3" {
			// Extension fields (W<vsize>, S<size>, …) come first; the file name follows ':'.
			i := strings.Index(rest, ":")
			if i < 0 || (i > 0 && rest[i-1] != ' ') {
				return nil, damaged(n, "no file name")
			}
			name = rest[i+1:]
		}
		base, _ := splitInfo(name)
		if base == "" || strings.ContainsAny(base, "/\x00") {
			return nil, damaged(n, "bad file name")
		}
		if (len(idx.entries) > 0 && uint32(uid) <= idx.entries[len(idx.entries)-1].uid) || seen[base] {
			return nil, damaged(n, "UID out of order")
		}
		seen[base] = true
		idx.entries = append(idx.entries, indexEntry{uid: uint32(uid), base: base})
	}
	if err := sc.Err(); err != nil {
		return nil, damaged(0, err.Error())
	}
	if len(idx.entries) > 0 {
		idx.uidNext = max(idx.uidNext, idx.entries[len(idx.entries)-1].uid+1)
	}
	idx.uidNext = max(idx.uidNext, 1)
	return &idx, nil
}

// readDovecotKeywords reads dir's dovecot-keywords ("<index> <keyword>" lines; index 0..25 is
// the letter a..z in file names). Lines it cannot use are skipped; no file is no keywords.
func readDovecotKeywords(dir string) []string {
	data, err := os.ReadFile(filepath.Join(dir, dovecotKeywords))
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(string(data), "\n") {
		numStr, kw, ok := strings.Cut(strings.TrimRight(line, "\r"), " ")
		i, err := strconv.Atoi(numStr)
		if !ok || err != nil || i < 0 || i >= 26 || !validKeyword(kw) {
			continue
		}
		for len(out) <= i {
			out = append(out, "")
		}
		out[i] = kw
	}
	return out
}

// seedFromDovecotLocked starts a folder that has no index: from its dovecot-uidlist if it has a
// usable one (UIDVALIDITY, UIDs and UIDNEXT kept; listed files still in new/ are moved to cur/
// first so they keep their UIDs), else afresh with a new UIDVALIDITY. It returns what
// finishDovecotSeedLocked needs after the scan, or nil when nothing came from Dovecot.
func (f *Folder) seedFromDovecotLocked() *dovecotSeed {
	idx, err := readUIDList(f.dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			f.s.logger.Warn("Ignored a damaged dovecot-uidlist: the folder gets new UIDs and a new UIDVALIDITY",
				"mailbox", f.address, "folder", f.name, "error", err)
		}
		f.uidValidity, f.uidNext = f.s.newUIDValidity(), 1
		if kws := readDovecotKeywords(f.dir); kws != nil {
			return &dovecotSeed{keywords: kws}
		}
		return nil
	}
	f.s.noteUIDValidity(idx.uidValidity)
	f.uidValidity, f.uidNext = idx.uidValidity, idx.uidNext
	listed := make(map[string]bool, len(idx.entries))
	f.msgs = make([]Message, 0, len(idx.entries))
	for _, e := range idx.entries {
		listed[e.base] = true
		f.msgs = append(f.msgs, Message{UID: e.uid, base: e.base})
	}
	if names, err := readNames(filepath.Join(f.dir, "new")); err == nil {
		for _, n := range names {
			if base, _ := splitInfo(n); listed[base] {
				// Not moved, it gets a new UID from the scan, as any unlisted mail.
				_ = os.Rename(filepath.Join(f.dir, "new", n), filepath.Join(f.dir, "cur", curName(base, "")))
			}
		}
	}
	return &dovecotSeed{uidValidity: idx.uidValidity, firstNew: idx.uidNext, keywords: readDovecotKeywords(f.dir)}
}

// finishDovecotSeedLocked runs after the first scan of a seeded folder: keyword letters (a..z)
// in file names become the keywords dovecot-keywords names, and the seeding is logged.
func (f *Folder) finishDovecotSeedLocked(seed *dovecotSeed) {
	if seed == nil {
		return
	}
	kept := 0
	for i := range f.msgs {
		m := &f.msgs[i]
		if m.UID < seed.firstNew {
			kept++
		}
		for j := 0; j < len(m.Letters); j++ {
			c := m.Letters[j]
			if c < 'a' || c > 'z' || int(c-'a') >= len(seed.keywords) {
				continue
			}
			if kw := seed.keywords[c-'a']; kw != "" && !containsFold(m.Keywords, kw) {
				m.Keywords = append(m.Keywords, kw)
			}
		}
	}
	if seed.uidValidity != 0 {
		f.s.logger.Info("Kept Dovecot's UIDs", "mailbox", f.address, "folder", f.name,
			"uidValidity", seed.uidValidity, "messages", kept)
	}
}

// noteUIDValidity records v as handed out, so newUIDValidity stays above a UIDVALIDITY kept
// from Dovecot (a folder deleted and made again must get a different one).
func (s *Store) noteUIDValidity(v uint32) {
	s.uidvMu.Lock()
	defer s.uidvMu.Unlock()
	if last, err := s.lastUIDValidityLocked(); err == nil && uint32(last) >= v {
		return
	}
	s.recordUIDValidityLocked(v)
}
