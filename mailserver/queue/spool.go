package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
)

// State is where one recipient stands.
type State string

const (
	Pending   State = "pending"
	Delivered State = "delivered"
	Failed    State = "failed"
)

// Rcpt is one recipient of a queued message and its last result.
type Rcpt struct {
	Addr      string    `json:"addr"`
	State     State     `json:"state"`
	Code      int       `json:"code,omitempty"`      // last SMTP reply code; 0 if none
	Status    string    `json:"status,omitempty"`    // last enhanced status, "4.4.1"
	Reply     string    `json:"reply,omitempty"`     // last reply text or local reason
	RemoteMTA string    `json:"remoteMTA,omitempty"` // the host that replied
	At        time.Time `json:"at,omitzero"`         // when the last result came
	Notified  bool      `json:"notified,omitempty"`  // the sender had the failure notice
}

// Record is the metadata of one queued message (meta/<id>.json).
type Record struct {
	Version       int       `json:"version"`
	ID            string    `json:"id"`
	From          string    `json:"from"`
	Arrival       time.Time `json:"arrival"`
	Size          int64     `json:"size"`
	Attempts      int       `json:"attempts"`
	NextAttempt   time.Time `json:"nextAttempt"`
	LastAttempt   time.Time `json:"lastAttempt,omitzero"`
	DelayNotified bool      `json:"delayNotified,omitempty"`
	Rcpts         []Rcpt    `json:"rcpts"`
	DKIM          string    `json:"dkim,omitempty"` // the envelope's DKIM-Signature field
}

const recordVersion = 1

func (r *Record) clone() Record {
	c := *r
	c.Rcpts = append([]Rcpt(nil), r.Rcpts...)
	return c
}

// validate checks a record read from disk named id.
func (r *Record) validate(id string) error {
	switch {
	case r.Version != recordVersion:
		return fmt.Errorf("unknown version %d", r.Version)
	case r.ID != id:
		return fmt.Errorf("record of %q in the file of %q", r.ID, id)
	case len(r.Rcpts) == 0:
		return errors.New("no recipients")
	case r.Arrival.IsZero():
		return errors.New("no arrival time")
	}
	for _, rc := range r.Rcpts {
		if rc.Addr == "" {
			return errors.New("a recipient without an address")
		}
		switch rc.State {
		case Pending, Delivered, Failed:
		default:
			return fmt.Errorf("recipient %s has unknown state %q", rc.Addr, rc.State)
		}
	}
	return nil
}

// spool is the queue's files. Its directory fsyncs of msg/ and meta/ are shared among the
// concurrent Enqueues and attempts (group commit, durable.GroupSync): each still waits for an
// fsync that started after its own rename.
type spool struct {
	dir  string
	dirs *durable.GroupSync
}

func (s spool) msgPath(id string) string  { return filepath.Join(s.dir, "msg", id) }
func (s spool) metaPath(id string) string { return filepath.Join(s.dir, "meta", id+".json") }

func (s spool) init() error {
	if err := os.RemoveAll(filepath.Join(s.dir, "tmp")); err != nil {
		return fmt.Errorf("queue: clearing tmp: %w", err)
	}
	for _, sub := range []string{"msg", "meta", "tmp", "quarantine"} {
		if err := os.MkdirAll(filepath.Join(s.dir, sub), 0o700); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
	}
	return durable.SyncDir(s.dir)
}

// writeMessage streams the envelope header, prefix and body into msg/<id> and returns the
// message's size (prefix and body). The file appears in msg/ only complete and fsynced, and
// msg/ is fsynced (shared) before it returns: the message is then queued.
func (s spool) writeMessage(env *envelope, prefix []byte, body io.Reader) (int64, error) {
	hdr, err := env.encode()
	if err != nil {
		return 0, err
	}
	head := append(hdr, prefix...)
	dir, path := filepath.Join(s.dir, "msg"), s.msgPath(env.ID)
	// The header and the body go to the file in writes of up to 64 KiB, not in the pieces the
	// SMTP reader hands over: one write for a usual message instead of four or five.
	src := chunked{io.MultiReader(bytes.NewReader(head), body)}
	f, n, err := durable.WriteAnonymous(dir, 0o600, nil, src)
	switch {
	case err == nil:
		err = durable.Link(f, path)
		f.Close()
		if err == nil {
			err = s.dirs.SyncDir(dir)
		}
	case errors.Is(err, durable.ErrUnsupported): // nothing read from body yet
		tmp := filepath.Join(s.dir, "tmp", env.ID)
		n, err = durable.WriteNew(tmp, 0o600, nil, src)
		if err == nil {
			err = s.dirs.Move(tmp, path)
		}
	}
	if err != nil {
		os.Remove(path)
		return 0, fmt.Errorf("queue: writing the message: %w", err)
	}
	return n - int64(len(hdr)), nil
}

// writeRecord writes meta/<id>.json durably, replacing the previous record.
func (s spool) writeRecord(r *Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := s.dirs.Replace(s.metaPath(r.ID), filepath.Join(s.dir, "tmp", r.ID+".json"), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("queue: writing the record: %w", err)
	}
	return nil
}

// remove takes a message out of the queue: its message file first, durably (a message file is
// a queued message, with or without a record), then its record if it has one. A record left
// by a crash in between is removed at start-up.
func (s spool) remove(id string) error {
	// unlink(2), not os.Remove, which tries rmdir(2) as well when unlink fails: most messages
	// never had a record, and that would be two failed system calls per message.
	if err := syscall.Unlink(s.msgPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: removing %s: %w", id, &os.PathError{Op: "unlink", Path: s.msgPath(id), Err: err})
	}
	if err := s.dirs.SyncDir(filepath.Join(s.dir, "msg")); err != nil {
		return fmt.Errorf("queue: removing %s: %w", id, err)
	}
	if err := syscall.Unlink(s.metaPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: removing the record of %s: %w", id, &os.PathError{Op: "unlink", Path: s.metaPath(id), Err: err})
	}
	return nil
}

// chunked hands its reader's bytes to a writer in chunks of up to 64 KiB (io.Copy uses WriteTo).
type chunked struct{ r io.Reader }

var chunks = sync.Pool{New: func() any { return new([64 << 10]byte) }}

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c chunked) WriteTo(w io.Writer) (int64, error) {
	buf := chunks.Get().(*[64 << 10]byte)
	defer chunks.Put(buf)
	var total int64
	for {
		// Not io.ReadFull: it reports a short last chunk as io.ErrUnexpectedEOF, which must
		// stay the reader's own error (a connection lost inside the message).
		n, err := 0, error(nil)
		for n < len(buf) && err == nil {
			var m int
			m, err = c.r.Read(buf[n:])
			n += m
		}
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// quarantine moves a damaged entry's files aside.
func (s spool) quarantine(id string) error {
	q := filepath.Join(s.dir, "quarantine")
	var errs []error
	for from, to := range map[string]string{s.metaPath(id): filepath.Join(q, id+".json"), s.msgPath(id): filepath.Join(q, id+".msg")} {
		if err := os.Rename(from, to); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, durable.SyncDir(q), durable.SyncDir(filepath.Join(s.dir, "msg")), durable.SyncDir(filepath.Join(s.dir, "meta")))
	return errors.Join(errs...)
}

// recover reads every message: its record when it has one (the newer state), else its envelope
// header. Damaged entries are quarantined and reported through bad, as are the records of
// messages already removed (errStaleRecord), which are deleted.
func (s spool) recover(bad func(id string, err error)) ([]*Record, error) {
	metas, err := os.ReadDir(filepath.Join(s.dir, "meta"))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	records := map[string]bool{}
	for _, e := range metas {
		name := e.Name()
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !validID(id) {
			bad(name, errors.New("not a queue record name"))
			os.Rename(filepath.Join(s.dir, "meta", name), filepath.Join(s.dir, "quarantine", name))
			continue
		}
		records[id] = true
	}
	msgs, err := os.ReadDir(filepath.Join(s.dir, "msg"))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	var recs []*Record
	for _, e := range msgs {
		id := e.Name()
		if !validID(id) {
			bad(id, errors.New("not a queue message name"))
			os.Rename(filepath.Join(s.dir, "msg", id), filepath.Join(s.dir, "quarantine", id))
			continue
		}
		hasRecord := records[id]
		delete(records, id)
		rec, err := s.loadEnvelope(id)
		if err == nil && hasRecord {
			rec, err = s.readRecord(id)
		}
		if err != nil {
			bad(id, err)
			if qerr := s.quarantine(id); qerr != nil {
				return nil, fmt.Errorf("queue: quarantining %s: %w", id, qerr)
			}
			continue
		}
		recs = append(recs, rec)
	}
	for id := range records {
		bad(id, errStaleRecord)
		if err := os.Remove(s.metaPath(id)); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	return recs, nil
}

var errStaleRecord = errors.New("record of a message no longer in msg/ (its removal was cut short); removed")

func (s spool) readRecord(id string) (*Record, error) {
	data, err := os.ReadFile(s.metaPath(id))
	if err != nil {
		return nil, err
	}
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("unparsable record: %w", err)
	}
	if err := rec.validate(id); err != nil {
		return nil, err
	}
	return &rec, nil
}

func validID(id string) bool {
	if len(id) != 21 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
