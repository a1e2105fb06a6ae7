package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
)

const (
	indexName   = "kubemail-index"
	indexHeader = "kubemail-index 1"
)

// errIndexDamaged means the index file exists but cannot be trusted.
var errIndexDamaged = errors.New("index damaged")

// indexEntry is one message line of the index.
type indexEntry struct {
	uid      uint32
	base     string
	date     time.Time
	keywords []string
}

type indexFile struct {
	uidValidity, uidNext uint32
	entries              []indexEntry // in UID order
}

// readIndex reads dir's index. It returns os.ErrNotExist if there is none, and errIndexDamaged
// (wrapped) if it cannot be parsed, is truncated, or is inconsistent.
func readIndex(dir string) (*indexFile, error) {
	data, err := os.ReadFile(filepath.Join(dir, indexName))
	if err != nil {
		return nil, err
	}
	damaged := func(line int, why string) error {
		return fmt.Errorf("%w: line %d: %s", errIndexDamaged, line, why)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() || sc.Text() != indexHeader {
		return nil, damaged(1, "bad header")
	}
	var idx indexFile
	if !sc.Scan() {
		return nil, damaged(2, "missing uidvalidity")
	}
	if _, err := fmt.Sscanf(sc.Text(), "uidvalidity %d uidnext %d", &idx.uidValidity, &idx.uidNext); err != nil || idx.uidValidity == 0 || idx.uidNext == 0 {
		return nil, damaged(2, "bad uidvalidity line")
	}
	seen := make(map[string]bool)
	for n := 3; sc.Scan(); n++ {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "end "); ok {
			count, err := strconv.Atoi(rest)
			if err != nil || count != len(idx.entries) || sc.Scan() {
				return nil, damaged(n, "bad end line")
			}
			return &idx, nil
		}
		e, err := parseIndexLine(line)
		if err != nil {
			return nil, damaged(n, err.Error())
		}
		if e.uid >= idx.uidNext || (len(idx.entries) > 0 && e.uid <= idx.entries[len(idx.entries)-1].uid) || seen[e.base] {
			return nil, damaged(n, "UID out of order")
		}
		seen[e.base] = true
		idx.entries = append(idx.entries, e)
	}
	return nil, damaged(0, "truncated")
}

func parseIndexLine(line string) (indexEntry, error) {
	var e indexEntry
	uidStr, rest, ok := strings.Cut(line, " ")
	if !ok {
		return e, errors.New("short line")
	}
	uid, err := strconv.ParseUint(uidStr, 10, 32)
	if err != nil || uid == 0 {
		return e, errors.New("bad UID")
	}
	e.uid = uint32(uid)
	if strings.HasPrefix(rest, `"`) {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return e, errors.New("bad name")
		}
		e.base, _ = strconv.Unquote(q)
		rest = strings.TrimPrefix(rest[len(q):], " ")
	} else {
		e.base, rest, _ = strings.Cut(rest, " ")
	}
	if e.base == "" {
		return e, errors.New("empty name")
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return e, errors.New("missing date")
	}
	ns, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return e, errors.New("bad date")
	}
	e.date = time.Unix(0, ns)
	for _, kw := range fields[1:] {
		if !validKeyword(kw) {
			return e, errors.New("bad keyword")
		}
		e.keywords = append(e.keywords, kw)
	}
	return e, nil
}

// writeIndex replaces dir's index atomically: tmp file, fsync, rename, fsync dir.
func writeIndex(dir string, idx *indexFile) error {
	var b bytes.Buffer
	b.Grow(64 + len(idx.entries)*80)
	fmt.Fprintf(&b, "%s\nuidvalidity %d uidnext %d\n", indexHeader, idx.uidValidity, idx.uidNext)
	for _, e := range idx.entries {
		b.WriteString(strconv.FormatUint(uint64(e.uid), 10))
		b.WriteByte(' ')
		if strings.ContainsAny(e.base, " \"\n\r\t") {
			b.WriteString(strconv.Quote(e.base))
		} else {
			b.WriteString(e.base)
		}
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(e.date.UnixNano(), 10))
		for _, kw := range e.keywords {
			b.WriteByte(' ')
			b.WriteString(kw)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "end %d\n", len(idx.entries))

	if err := durable.Replace(filepath.Join(dir, indexName), filepath.Join(dir, indexName+".tmp"), b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("store: writing index in %s: %w", dir, err)
	}
	return nil
}
