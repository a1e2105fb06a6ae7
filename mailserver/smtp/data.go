package smtp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/autoreply"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// Data receives the message of the transaction (DATA, or all BDAT chunks) on the MX.
func (s *session) Data(r io.Reader) error {
	return s.deliver(r)
}

// deliver streams the message into every recipient mailbox at once, behind a Received: header,
// and answers 250 only after the store has made every copy durable (RFC 5321 6.1: once we
// accept, we are responsible for it). A submitted message (one with an authenticated user) also
// gets a Message-ID and Date when it lacks them.
func (s *session) deliver(r io.Reader) error {
	tx := s.takeTransaction()
	if tx == nil {
		return errTooManyErrors // a 421 was sent; go-smtp only calls Data after an accepted RCPT
	}
	user := tx.user
	_, bdat := r.(*io.PipeReader) // go-smtp hands BDAT chunks over through a pipe
	body := &bodyReader{r: r, limit: tx.sizeLimit, conn: s.conn.Conn(), timeout: s.conn.Server().ReadTimeout, bdat: bdat}
	prefix := s.receivedHeader(tx, user)
	var src io.Reader = body
	if user != nil {
		prefix, src = addMissingHeaders(prefix, body, s.b.opts.Hostname, time.Now())
	}
	var err error
	if tx.spf != nil {
		// The checks need the whole message before the reply: it is spooled, verified, and
		// delivered from the spool behind the Authentication-Results field (RFC 8601 5: above
		// the other trace fields).
		defer tx.spf.Cancel()
		var sp *spool
		var results []byte
		sp, results, err = s.authenticate(tx, body)
		defer sp.close()
		if err == errDMARCReject {
			return err
		}
		prefix, src = append(results, prefix...), sp.reader()
	}
	// Out-of-office replies need the header of what went into the INBOXes; mail for the queue is
	// answered when the queue delivers it.
	var capture *autoreply.Capture
	if err == nil && len(tx.remote) == 0 && s.b.opts.AutoReply.Wants(tx.inboxes()) {
		capture = autoreply.NewCapture(src)
		src = capture
	}
	var groupIDs []string
	switch {
	case err != nil:
	case len(tx.groups) > 0:
		groupIDs, err = s.deliverGroups(tx, prefix, src)
	case len(tx.remote) > 0:
		// One sink for the whole message: the queue delivers the local recipients too.
		rcpts := append(slices.Clone(tx.mailboxes), tx.remote...)
		_, err = s.b.opts.Queue.Enqueue(s.ctx, tx.from, rcpts, prefix, src)
	default:
		err = s.deliverLocal(tx, prefix, src)
	}
	if err == nil && body.err == nil {
		s.logAccepted(tx, user, body.n, groupIDs)
		if capture != nil {
			// In the background: the reply never delays or fails the delivery.
			s.b.opts.AutoReply.Delivered(tx.from, tx.inboxes(), append(bytes.Clone(prefix), capture.Header()...))
		}
		return reply(250, gosmtp.EnhancedCode{2, 0, 0}, "OK: queued as "+tx.id)
	}
	if body.err != nil {
		rep, reason, hangUp := body.failure()
		s.logRejected("Rejected message", tx, tx.from, "", rep, reason)
		if hangUp {
			// The client is gone or stuck: end the connection after the reply.
			closeRead(s.conn.Conn())
		}
		return rep
	}
	if errors.Is(err, errGroupLoopMark) {
		s.logRejected("Rejected message", tx, tx.from, "", errGroupLoop, err.Error())
		return errGroupLoop
	}
	if rep := s.quotaReply(tx, err); rep != nil {
		return rep
	}
	if s.ctx.Err() != nil {
		s.log.Info("Aborted message", "id", tx.id, "from", tx.from, "reason", "server closing")
		return errAborted
	}
	rep := errLocalFailure
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		rep = errStorageFull
	}
	metrics.SMTPRejected(s.b.role.String(), "message", rep)
	s.log.Error("Failed delivering message", "id", tx.id, "from", tx.from, "mailboxes", tx.mailboxes,
		"code", rep.Code, "err", err)
	return rep
}

func (s *session) logAccepted(tx *transaction, user *config.Mailbox, size int64, groupIDs []string) {
	metrics.SMTPAccepted(s.b.role.String(), len(tx.remote) > 0)
	attrs := []any{"id", tx.id, "from", tx.from, "rcpts", tx.rcpts, "mailboxes", tx.mailboxes,
		"size", size, "duration", time.Since(tx.start).Round(time.Microsecond), "tls", s.tls != nil}
	if tx.authResults != "" {
		attrs = append(attrs, "auth", tx.authResults)
	}
	attrs = append(attrs, s.junkAttrs(tx)...)
	if len(tx.groups) > 0 {
		groups := make([]string, len(tx.groups))
		for i, g := range tx.groups {
			groups[i] = g.Address
		}
		attrs = append(attrs, "groups", groups, "group_copies", groupIDs)
	}
	if user != nil {
		attrs = append(attrs, "user", user.Address)
	}
	s.log.Info("Accepted message", attrs...)
}

// bodyReader is the message as the store reads it. It counts bytes against the transaction's
// size limit, refuses bare LF, keeps the connection's read deadline moving while data arrives
// (go-smtp sets it only per command line, which would cap a whole transfer at the idle
// timeout), and remembers the first thing that went wrong for the reply. Its error makes the
// store abandon the copies (all or nothing).
type bodyReader struct {
	r       io.Reader
	limit   int64
	n       int64
	lastCR  bool // the previous chunk ended in CR
	err     error
	conn    net.Conn
	timeout time.Duration
	moved   time.Time // when the read deadline was last moved
	bdat    bool      // the data comes in BDAT chunks
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	// go-smtp's DATA reader fills the whole buffer before it returns, so a bounded read is what
	// lets keepAlive see a slow but steady client.
	if len(p) > readChunk {
		p = p[:readChunk]
	}
	n, err := b.r.Read(p)
	if n > 0 {
		chunk := p[:n]
		if hasBareLF(chunk, b.lastCR) {
			b.err = errBareLF
			return 0, b.err
		}
		b.lastCR = chunk[n-1] == '\r'
		b.n += int64(n)
		if b.n > b.limit {
			b.err = errTooBig
			return 0, b.err
		}
		b.keepAlive()
	}
	if err == io.EOF && b.bdat && peerClosed(b.conn) {
		// go-smtp v0.25.1 ends a BDAT chunk early, without an error, when the connection
		// ends inside it, and would have us store the truncated message. A client still
		// connected has sent every chunk in full; one gone has not (or cannot hear the reply).
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		b.err = err
		return 0, err
	}
	return n, err
}

// readChunk bounds one read of the body: a client must send this much per read timeout.
const readChunk = 16 << 10

// hasBareLF reports whether p has an LF not preceded by CR (RFC 5321 2.3.8). Lines ending in a
// bare LF are how SMTP smuggling hides a second message; go-smtp already refuses to end DATA on
// them, and we refuse the message outright, as Postfix 3.9 does.
func hasBareLF(p []byte, lastCR bool) bool {
	for i := 0; ; {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			return false
		}
		j += i
		if j == 0 && !lastCR || j > 0 && p[j-1] != '\r' {
			return true
		}
		i = j + 1
	}
}

func (b *bodyReader) keepAlive() {
	if b.timeout <= 0 {
		return
	}
	if now := time.Now(); now.Sub(b.moved) >= min(time.Second, b.timeout/4) {
		b.moved = now
		_ = b.conn.SetReadDeadline(now.Add(b.timeout))
	}
}

// failure turns what stopped the body into a reply, a reason for the log, and whether the
// connection should end after the reply.
func (b *bodyReader) failure() (rep *gosmtp.SMTPError, reason string, hangUp bool) {
	var ne net.Error
	switch {
	case b.err == errTooBig || errors.Is(b.err, gosmtp.ErrDataTooLarge):
		return errTooBig, "message over the size limit", false
	case b.err == errBareLF:
		return errBareLF, "bare LF in message", false
	case errors.Is(b.err, gosmtp.ErrTooLongLine):
		// go-smtp then answers 500 5.4.0 to the rest of the line and closes the connection.
		return errLineTooLong, "line too long in message", false
	case errors.Is(b.err, gosmtp.ErrDataReset):
		return errAborted, "transfer reset by the client", false
	case errors.As(b.err, &ne) && ne.Timeout():
		return errDataTimeout, "timeout waiting for data", true
	}
	return errAborted, "connection lost: " + b.err.Error(), true
}
