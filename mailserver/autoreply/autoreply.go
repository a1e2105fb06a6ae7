package autoreply

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// MaxHeader is the most of a message's header the rules look at.
const MaxHeader = 64 << 10

// MaxInFlight bounds the messages being answered at once; past it a reply is dropped (busy).
const MaxInFlight = 64

// Enqueuer takes a message for delivery; *queue.Queue satisfies it.
type Enqueuer interface {
	Enqueue(ctx context.Context, from string, rcpts []string, prefix []byte, body io.Reader) (string, error)
}

// EnqueueFunc adapts a function to Enqueuer (the server makes the Responder before its queue).
type EnqueueFunc func(ctx context.Context, from string, rcpts []string, prefix []byte, body io.Reader) (string, error)

// Enqueue calls f.
func (f EnqueueFunc) Enqueue(ctx context.Context, from string, rcpts []string, prefix []byte, body io.Reader) (string, error) {
	return f(ctx, from, rcpts, prefix, body)
}

// Options configure a Responder.
type Options struct {
	Live     *config.Live // the mailboxes and their AutoReply, read when a message is answered
	Dir      string       // where the per-mailbox memory of answered senders is kept
	Hostname string       // the right-hand side of the replies' Message-IDs
	Queue    Enqueuer
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now (tests move it).
	Now func() time.Time
}

// Responder answers delivered mail for the mailboxes that have an AutoReply.
type Responder struct {
	opts     Options
	log      *slog.Logger
	wg       sync.WaitGroup
	inFlight atomic.Int32
	mu       sync.Mutex // guards memory and the files: one decision at a time per Responder
	memory   map[string]*memory
}

// New returns a Responder.
func New(opts Options) *Responder {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	return &Responder{opts: opts, log: opts.Logger, memory: map[string]*memory{}}
}

// Wants reports whether any of mailboxes (primary addresses) has an AutoReply in the config in
// force: when none has, the caller need not keep the header for Delivered.
func (r *Responder) Wants(mailboxes []string) bool {
	if r == nil || r.opts.Live == nil {
		return false
	}
	dir := r.opts.Live.Load()
	for _, addr := range mailboxes {
		if mb := dir.Lookup(addr); mb != nil && mb.AutoReply != nil {
			return true
		}
	}
	return false
}

// Delivered is told that a message from the envelope sender from was stored in the INBOX of
// each of mailboxes; header is the message's header as stored (at most MaxHeader bytes are
// looked at). It returns at once; the replies are worked out and queued in the background.
func (r *Responder) Delivered(from string, mailboxes []string, header []byte) {
	if !r.Wants(mailboxes) {
		return
	}
	if r.inFlight.Add(1) > MaxInFlight {
		r.inFlight.Add(-1)
		for _, mb := range mailboxes {
			r.suppressed(mb, from, reasonBusy)
		}
		return
	}
	header = bytes.Clone(header[:min(len(header), MaxHeader)])
	mailboxes = append([]string(nil), mailboxes...)
	r.wg.Go(func() {
		defer r.inFlight.Add(-1)
		r.answer(from, mailboxes, header)
	})
}

// Wait returns once the replies being worked on are queued (or given up).
func (r *Responder) Wait() { r.wg.Wait() }

func (r *Responder) answer(from string, mailboxes []string, rawHeader []byte) {
	dir := r.opts.Live.Load()
	now := r.opts.Now()
	hdr := parseHeader(rawHeader)
	for _, addr := range mailboxes {
		mb := dir.Lookup(addr)
		if mb == nil || mb.AutoReply == nil {
			continue
		}
		if reason := suppress(dir, mb, from, hdr, now); reason != "" {
			r.suppressed(mb.Address, from, reason)
			continue
		}
		r.reply(mb, from, hdr, now)
	}
}

// reply remembers the sender, then queues the reply; the memory is taken back when it cannot be
// queued, so a later message gets one.
func (r *Responder) reply(mb *config.Mailbox, from string, hdr textproto.MIMEHeader, now time.Time) {
	ar := mb.AutoReply
	undo, ok := r.remember(mb.Address, ar, from, now)
	if !ok {
		r.suppressed(mb.Address, from, reasonAlreadyReplied)
		return
	}
	msg := buildReply(mb.Address, from, ar, hdr, now, r.opts.Hostname)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := r.opts.Queue.Enqueue(ctx, "", []string{from}, nil, bytes.NewReader(msg))
	if err != nil {
		undo()
		metrics.AutoReplies.WithLabelValues(metrics.AutoReplyFailed).Inc()
		r.log.Error("Failed to queue an automatic reply", "mailbox", mb.Address, "to", from, "err", err)
		return
	}
	metrics.AutoReplies.WithLabelValues(metrics.AutoReplySent).Inc()
	r.log.Info("Sent an automatic reply", "mailbox", mb.Address, "to", from, "id", id)
}

func (r *Responder) suppressed(mailbox, from, reason string) {
	metrics.AutoReplies.WithLabelValues("suppressed_" + reason).Inc()
	r.log.Info("Suppressed an automatic reply", "mailbox", mailbox, "from", from, "reason", reason)
}

// ReadHeader reads the header of the message in src (up to the empty line, at most MaxHeader
// bytes), for callers that have the stored message rather than the data as it arrived.
func ReadHeader(src io.Reader) []byte {
	br := bufio.NewReader(io.LimitReader(src, MaxHeader))
	var out []byte
	for {
		line, err := br.ReadSlice('\n')
		out = append(out, line...)
		if err != nil || len(bytes.TrimRight(line, "\r\n")) == 0 {
			return out
		}
	}
}

// Capture passes src through and keeps its header (up to the empty line, at most MaxHeader
// bytes): wrapped around the data a store reads, it costs no second read.
type Capture struct {
	src  io.Reader
	buf  []byte
	done bool
}

// NewCapture returns a Capture reading from src.
func NewCapture(src io.Reader) *Capture { return &Capture{src: src} }

func (c *Capture) Read(p []byte) (int, error) {
	n, err := c.src.Read(p)
	if !c.done && n > 0 {
		c.buf = append(c.buf, p[:n]...)
		if bytes.HasPrefix(c.buf, []byte("\r\n")) {
			c.buf, c.done = c.buf[:2], true // no header at all
		} else if i := bytes.Index(c.buf, []byte("\r\n\r\n")); i >= 0 {
			c.buf, c.done = c.buf[:i+4], true
		} else if i := bytes.Index(c.buf, []byte("\n\n")); i >= 0 {
			c.buf, c.done = c.buf[:i+2], true
		} else if len(c.buf) >= MaxHeader {
			c.buf, c.done = c.buf[:MaxHeader], true
		}
	}
	return n, err
}

// Header is what was kept so far.
func (c *Capture) Header() []byte { return c.buf }
