package store

import (
	"cmp"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

var (
	deliveryCounter atomic.Uint64
	hostPart        = maildirHost()
)

// maildirHost is the host name as the Maildir spec wants it in file names: "/" and ":" escaped
// as \057 and \072.
func maildirHost() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	h = strings.ReplaceAll(h, "/", `\057`)
	return strings.ReplaceAll(h, ":", `\072`)
}

// uniqueBase returns a new unique Maildir base name without the size field:
// "<seconds>.M<usec>P<pid>Q<counter>.<host>" (https://cr.yp.to/proto/maildir.html).
func uniqueBase(now time.Time) string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString(strconv.FormatInt(now.Unix(), 10))
	b.WriteString(".M")
	b.WriteString(strconv.Itoa(now.Nanosecond() / 1000))
	b.WriteString("P")
	b.WriteString(strconv.Itoa(os.Getpid()))
	b.WriteString("Q")
	b.WriteString(strconv.FormatUint(deliveryCounter.Add(1), 10))
	b.WriteString(".")
	b.WriteString(hostPart)
	return b.String()
}

// withSize appends Dovecot's size field to a base name.
func withSize(base string, size int64) string {
	return base + ",S=" + strconv.FormatInt(size, 10)
}

// sizeFromName returns the ",S=<n>" field of a Maildir name, if present.
func sizeFromName(name string) (int64, bool) {
	base, _ := splitInfo(name)
	i := strings.Index(base, ",S=")
	if i < 0 {
		return 0, false
	}
	v := base[i+3:]
	if j := strings.IndexByte(v, ','); j >= 0 {
		v = v[:j]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n >= 0
}

// splitInfo splits a Maildir file name into its base and the flag letters after ":2,".
func splitInfo(name string) (base, flags string) {
	i := strings.Index(name, ":2,")
	if i < 0 {
		if j := strings.IndexByte(name, ':'); j >= 0 {
			return name[:j], ""
		}
		return name, ""
	}
	return name[:i], name[i+3:]
}

// Maildir flag letters (https://cr.yp.to/proto/maildir.html, "info semantics").
const (
	FlagDraft    = 'D'
	FlagFlagged  = 'F'
	FlagAnswered = 'R'
	FlagSeen     = 'S'
	FlagDeleted  = 'T'
)

// normFlags returns the flag letters sorted and without duplicates, as Maildir requires.
func normFlags(flags string) string {
	b := []byte(flags)
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	out := make([]byte, 0, len(b))
	for i, c := range b {
		if c < 'A' || c > 'z' || (i > 0 && c == b[i-1]) {
			continue
		}
		out = append(out, c)
	}
	return string(out)
}

// compareBases orders Maildir base names by when they were made, for UIDs in delivery order:
// runs of digits compare as numbers, the rest byte by byte. Base names are not fixed-width (ours
// are "<seconds>.M<usec>P<pid>Q<counter>.<host>" with neither usec nor counter padded, as in
// Dovecot's), so plain string order puts M100000 (0.1 s into a second) before M99999, and Q10
// before Q9. Names equal so (only in leading zeros) compare as strings.
func compareBases(a, b string) int {
	if c := compareNatural(a, b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func compareNatural(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

// digitRun is the length of the run of ASCII digits s starts with.
func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// curName is the name of a message file in cur/.
func curName(base, flags string) string {
	return base + ":2," + normFlags(flags)
}
