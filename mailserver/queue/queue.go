package queue

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// Transport delivers a message to its recipients; *delivery.Client is the real one.
type Transport interface {
	Deliver(ctx context.Context, m *delivery.Message) []delivery.Result
}

// Options configure a Queue.
type Options struct {
	// Hostname names this server in notices (Reporting-MTA, MAILER-DAEMON@Hostname).
	Hostname  string
	Retry     RetryPolicy
	Transport Transport
	// Workers is how many messages are delivered at once; 0 means 16.
	Workers int
	// DrainTimeout is how long the attempts under way may go on once Run's context ends; 0
	// means 15 s (Kubernetes gives a pod 30 s to stop).
	DrainTimeout time.Duration
	// Live and Local deliver notices to senders that are our own mailboxes; without them every
	// notice is queued.
	Live  *config.Live
	Local delivery.LocalDeliverer
	// Signer, when set, DKIM-signs a message of up to SignInMemory bytes as it is queued: once,
	// whatever the retries, and before the 250, as Postfix with a signing milter does. The
	// signature is kept in the envelope and put in front of the message only towards other
	// servers. Larger messages are signed by the delivery client at their first transaction.
	Signer delivery.Signer
	Logger *slog.Logger
}

// SignInMemory is the largest message Enqueue reads into memory to sign.
const SignInMemory = 256 << 10

// ErrNotFound is returned for a queue ID that is not in the queue.
var ErrNotFound = errors.New("queue: no such message")

// Queue is the outbound queue. Its methods are safe for concurrent use.
type Queue struct {
	spool spool
	opts  Options
	log   *slog.Logger

	retry atomic.Pointer[RetryPolicy] // read by every attempt; replaced on a config reload

	mu      sync.Mutex
	entries map[string]*entry
	sched   schedule // entries waiting for their next attempt
	wake    chan struct{}
	due     chan *entry
}

// entry is one message in memory, guarded by Queue.mu. While inflight, a worker works on a copy
// of its record and puts it back when the attempt ends.
type entry struct {
	rec      *Record
	inflight bool
	deleted  bool // Delete was called while inflight
	retry    bool // RetryNow was called while inflight
	index    int  // in sched; -1 when not there
}

// Open opens the queue in dir (normally <data>/queue), creating it if needed, and recovers
// every message in it; damaged entries are quarantined and logged. Run starts delivery.
func Open(dir string, opts Options) (*Queue, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	opts.Retry = opts.Retry.withDefaults()
	q := &Queue{
		spool:   spool{dir: dir, dirs: &durable.GroupSync{}},
		opts:    opts,
		log:     opts.Logger.With("component", "queue"),
		entries: map[string]*entry{},
		wake:    make(chan struct{}, 1),
		due:     make(chan *entry),
	}
	retry := opts.Retry
	q.retry.Store(&retry)
	if err := q.spool.init(); err != nil {
		return nil, err
	}
	recs, err := q.spool.recover(func(id string, err error) {
		if errors.Is(err, errStaleRecord) {
			q.log.Warn("Removed the record of a message already out of the queue", "id", id, "reason", err.Error())
			return
		}
		q.log.Error("Quarantined a damaged queue entry", "id", id, "dir", dir+"/quarantine", "err", err.Error())
	})
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		q.add(rec)
	}
	q.log.Info("Recovered the queue", "dir", dir, "messages", len(recs))
	return q, nil
}

// add puts a record in memory and in the schedule. Call with q.mu held, or before Run.
func (q *Queue) add(rec *Record) {
	e := &entry{rec: rec, index: -1}
	q.entries[rec.ID] = e
	heap.Push(&q.sched, e)
}

func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Enqueue stores a message for rcpts: prefix (the Received: header, CRLF-terminated) followed by
// body. It returns the queue ID once the message file, headed by its envelope, is on disk and
// fsynced with its directory, so the SMTP server may then reply 250. from "" is the null sender.
func (q *Queue) Enqueue(ctx context.Context, from string, rcpts []string, prefix []byte, body io.Reader) (string, error) {
	if len(rcpts) == 0 {
		return "", errors.New("queue: enqueue: no recipients")
	}
	now := time.Now()
	env := &envelope{ID: newID(now), From: from, Arrival: now.UTC(), Rcpts: rcpts}
	if q.opts.Signer != nil {
		buf := signBuffers.Get().(*[]byte)
		defer signBuffers.Put(buf)
		var err error
		if body, err = q.sign(ctx, env, prefix, body, *buf); err != nil {
			return "", fmt.Errorf("queue: enqueue: %w", err)
		}
	}
	size, err := q.spool.writeMessage(env, prefix, body)
	if err != nil {
		return "", err
	}
	id := env.ID
	if err := ctx.Err(); err != nil {
		q.spool.remove(id)
		return "", fmt.Errorf("queue: enqueue: %w", err)
	}
	// No record is written: until an attempt changes it, the envelope header is the record.
	rec := env.record(size)
	q.mu.Lock()
	q.add(rec)
	q.mu.Unlock()
	q.poke()
	metrics.QueueEnqueued.Inc()
	q.log.Info("Queued message", "id", id, "from", from, "rcpts", len(rcpts), "size", size)
	return id, nil
}

// Info is a queued message as List shows it.
type Info struct {
	Record
	InFlight bool // an attempt is running
}

// List returns every queued message, oldest first.
func (q *Queue) List() []Info {
	q.mu.Lock()
	out := make([]Info, 0, len(q.entries))
	for _, e := range q.entries {
		out = append(out, Info{Record: e.rec.clone(), InFlight: e.inflight})
	}
	q.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// RetryNow makes a message due at once (the schedule is kept in memory; the record learns of
// it at the next attempt).
func (q *Queue) RetryNow(id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[id]
	if e == nil {
		return ErrNotFound
	}
	if e.inflight {
		e.retry = true
		return nil
	}
	e.rec.NextAttempt = time.Now()
	heap.Fix(&q.sched, e.index)
	q.poke()
	return nil
}

// Delete removes a message from the queue without notifying anyone (the administrator's
// postsuper -d). A message being delivered is removed when the attempt ends.
func (q *Queue) Delete(id string) error {
	q.mu.Lock()
	e := q.entries[id]
	if e == nil {
		q.mu.Unlock()
		return ErrNotFound
	}
	if e.inflight {
		e.deleted = true
		q.mu.Unlock()
		return nil
	}
	heap.Remove(&q.sched, e.index)
	delete(q.entries, id)
	q.mu.Unlock()
	q.log.Info("Deleted message", "id", id)
	return q.spool.remove(id)
}

// SetRetryPolicy puts a new retry policy in force (on a config reload); zero fields take the
// defaults. Scheduled attempts keep their times; later ones follow the new policy.
func (q *Queue) SetRetryPolicy(p RetryPolicy) {
	p = p.withDefaults()
	q.retry.Store(&p)
}

func (q *Queue) retryPolicy() RetryPolicy { return *q.retry.Load() }

func (q *Queue) drainTimeout() time.Duration {
	if q.opts.DrainTimeout > 0 {
		return q.opts.DrainTimeout
	}
	return 15 * time.Second
}

// Len is the number of queued messages.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}

var (
	idCounter atomic.Uint32
	idSeed    = func() uint32 {
		var b [4]byte
		_, _ = rand.Read(b[:]) // never fails on supported platforms
		return binary.BigEndian.Uint32(b[:])
	}()
)

// newID is 13 hex digits of microseconds and 8 of a counter: unique, sorted by arrival.
func newID(now time.Time) string {
	return fmt.Sprintf("%013X%08X", now.UnixMicro()&(1<<52-1), idSeed+idCounter.Add(1))
}

// schedule is a min-heap of entries by next attempt time.
type schedule []*entry

func (s schedule) Len() int { return len(s) }
func (s schedule) Less(i, j int) bool {
	return s[i].rec.NextAttempt.Before(s[j].rec.NextAttempt)
}
func (s schedule) Swap(i, j int) {
	s[i], s[j] = s[j], s[i]
	s[i].index, s[j].index = i, j
}
func (s *schedule) Push(x any) {
	e := x.(*entry)
	e.index = len(*s)
	*s = append(*s, e)
}
func (s *schedule) Pop() any {
	old := *s
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*s = old[:len(old)-1]
	return e
}

// signBuffers hold the messages Enqueue signs: SignInMemory+1 bytes each, to see the end.
var signBuffers = sync.Pool{New: func() any { b := make([]byte, SignInMemory+1); return &b }}

// sign reads a message of up to SignInMemory bytes into buf and DKIM-signs it into env.DKIM;
// it returns the body to write, whole whatever happened, valid while buf is. A reading error is
// the SMTP client's (the enqueue fails as writing would); a signing error queues the message
// unsigned, to be signed on its way out instead.
func (q *Queue) sign(ctx context.Context, env *envelope, prefix []byte, body io.Reader, buf []byte) (io.Reader, error) {
	if len(prefix) >= SignInMemory {
		return body, nil
	}
	buf = buf[:SignInMemory+1-len(prefix)]
	n, err := io.ReadFull(body, buf)
	switch {
	case err == nil: // larger: signed at its first transaction
		return io.MultiReader(bytes.NewReader(buf), body), nil
	case err != io.EOF && err != io.ErrUnexpectedEOF:
		return nil, err
	}
	buf = buf[:n]
	sig, err := q.opts.Signer.Sign(ctx, io.MultiReader(bytes.NewReader(prefix), bytes.NewReader(buf)))
	if err != nil {
		q.log.Error("Failed signing message with DKIM at enqueue; signing it on its way out", "id", env.ID, "from", env.From, "err", err)
	} else {
		env.DKIM = string(sig)
	}
	return bytes.NewReader(buf), nil
}
