package autoreply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
	"github.com/kubemail/kubemail/mailserver/config"
)

// MaxSenders bounds the senders remembered per mailbox; the oldest are forgotten first.
const MaxSenders = 10000

// memory is one mailbox's file: who was answered when, for the reply identified by Handle.
type memory struct {
	Handle  string           `json:"handle"`
	Replied map[string]int64 `json:"replied"` // sender (lower case) → Unix seconds of the reply
}

// handle identifies a reply by its text: a changed reply is a new one (RFC 5230 4.2).
func handle(ar *config.AutoReply) string {
	sum := sha256.Sum256([]byte(ar.Subject + "\x00" + ar.Body))
	return hex.EncodeToString(sum[:8])
}

func (r *Responder) path(mailbox string) string {
	return filepath.Join(r.opts.Dir, url.PathEscape(mailbox)+".json")
}

// Forget drops what the responder remembers of mailbox's replies, on disk and in memory: the
// mailbox's mail was purged (Mailbox spec.reclaimPolicy: Delete), and whom it answered goes with
// it; a Mailbox made again with the address starts afresh.
func (r *Responder) Forget(mailbox string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.memory, mailbox)
	if err := os.Remove(r.path(mailbox)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", r.path(mailbox), err)
	}
	return nil
}

// remember records a reply from mailbox to sender at now, unless one was sent within the
// interval; undo takes the record back. The file is durable before it returns true.
func (r *Responder) remember(mailbox string, ar *config.AutoReply, sender string, now time.Time) (undo func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.load(mailbox)
	if h := handle(ar); m.Handle != h {
		m.Handle, m.Replied = h, map[string]int64{}
	}
	key := strings.ToLower(sender)
	prev, had := m.Replied[key]
	if had && now.Sub(time.Unix(prev, 0)) < ar.Interval && !now.Before(time.Unix(prev, 0)) {
		return nil, false
	}
	m.Replied[key] = now.Unix()
	prune(m, ar.Interval, now)
	if err := r.save(mailbox, m); err != nil {
		// Better no reply than one per message: a reply is sent only when it is remembered.
		r.log.Error("Failed to record an automatic reply; not sending it", "mailbox", mailbox, "err", err)
		delete(m.Replied, key)
		return nil, false
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if had {
			m.Replied[key] = prev
		} else {
			delete(m.Replied, key)
		}
		if err := r.save(mailbox, m); err != nil {
			r.log.Error("Failed to take back the record of an automatic reply", "mailbox", mailbox, "err", err)
		}
	}, true
}

// load returns the mailbox's memory, from the file the first time.
func (r *Responder) load(mailbox string) *memory {
	if m, ok := r.memory[mailbox]; ok {
		return m
	}
	m := &memory{Replied: map[string]int64{}}
	data, err := os.ReadFile(r.path(mailbox))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		r.log.Error("Failed to read the automatic reply record; starting afresh", "mailbox", mailbox, "err", err)
	default:
		if err := json.Unmarshal(data, m); err != nil {
			r.log.Error("Damaged automatic reply record; starting afresh", "mailbox", mailbox, "path", r.path(mailbox), "err", err)
			m = &memory{}
		}
		if m.Replied == nil {
			m.Replied = map[string]int64{}
		}
	}
	r.memory[mailbox] = m
	return m
}

func (r *Responder) save(mailbox string, m *memory) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", r.opts.Dir, err)
	}
	path := r.path(mailbox)
	if err := durable.Replace(path, path+".tmp", data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// prune forgets the senders answered longer than interval ago (they may be answered again) and
// keeps at most MaxSenders, the latest.
func prune(m *memory, interval time.Duration, now time.Time) {
	cutoff := now.Add(-interval).Unix()
	for k, t := range m.Replied {
		if t <= cutoff {
			delete(m.Replied, k)
		}
	}
	if len(m.Replied) <= MaxSenders {
		return
	}
	keys := make([]string, 0, len(m.Replied))
	for k := range m.Replied {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m.Replied[keys[i]] < m.Replied[keys[j]] })
	for _, k := range keys[:len(keys)-MaxSenders] {
		delete(m.Replied, k)
	}
}
