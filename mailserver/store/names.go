package store

import (
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

// curName is the name of a message file in cur/.
func curName(base, flags string) string {
	return base + ":2," + normFlags(flags)
}
