package smtp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/autoreply"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/msgauth"
)

// Deliverer puts one message into the INBOX of each mailbox, all or nothing, durably before it
// returns nil. *store.Store satisfies it; see the store package for the contract.
type Deliverer interface {
	Deliver(ctx context.Context, mailboxes []string, prefix []byte, body io.Reader) (int64, error)
}

// Enqueuer takes a message for later delivery, durably before it returns an ID (the outbound
// queue; *queue.Queue satisfies it). Local recipients given to it are delivered by it too.
type Enqueuer interface {
	Enqueue(ctx context.Context, from string, rcpts []string, prefix []byte, body io.Reader) (string, error)
}

// Options configure an MX or submission server.
type Options struct {
	Hostname string       // the server's name in the greeting and in Received: headers
	Live     *config.Live // domains and mailboxes; taken once per transaction, at MAIL
	Store    Deliverer
	// Queue takes mail with remote recipients: from authenticated users on submission, and from
	// clients in a RelayPolicy's trustedNetworks on either server. Nil refuses such mail.
	Queue  Enqueuer
	Auth   *auth.Authenticator // submission only
	TLS    *tls.Config         // STARTTLS; never nil in production
	Logger *slog.Logger
	// Verifier checks SPF, DKIM and DMARC of the mail the MX takes from clients outside the
	// trusted networks, adds an Authentication-Results header, and refuses a DMARC p=reject
	// failure (see the package doc). Nil: no checks, and the body is streamed as before.
	Verifier *msgauth.Verifier
	// SpoolDir holds the part past 1 MiB of a message being checked, in an unlinked file;
	// "" means os.TempDir().
	SpoolDir string
	// Draining, once true, refuses new transactions with 421 4.3.2 and closes the connection
	// (RFC 5321 3.8): the server is stopping, and a transaction begun now could be cut off.
	// Transactions already under way finish.
	Draining *atomic.Bool
	// AutoReply is told of every message stored straight into mailboxes' INBOX, after the
	// delivery, to send their out-of-office replies (package autoreply); nil sends none. Mail
	// that goes through the queue is answered when the queue delivers it (package delivery).
	AutoReply *autoreply.Responder
}

// Timeouts and limits of both servers. The returned *gosmtp.Server may be changed before Serve
// (tests shorten the timeouts).
const (
	// RFC 5321 4.5.3.2.7: the server waits at least 5 minutes for the next command. Data keeps
	// the connection alive while it arrives (see bodyReader), so this is an idle timeout.
	readTimeout = 5 * time.Minute
	// A client that does not read our replies is dropped after this.
	writeTimeout = time.Minute
	// RFC 5321 4.5.3.1.6 allows 1000 octets a line; go-smtp doubles it for lenience.
	maxLineLength = 2000
	// Rejected RCPTs tolerated on one connection before it is closed with 421.
	maxRejectedRecipients = 20
	// Message-ID and Date are looked for in at most this much header on submission.
	maxHeaderScan = 256 << 10
)

type role int

const (
	roleMX role = iota
	roleSubmission
)

func (r role) String() string {
	if r == roleSubmission {
		return "submission"
	}
	return "mx"
}

// NewMX returns the port 25 server: mail from other servers for our own mailboxes only.
func NewMX(opts Options) *gosmtp.Server { return newServer(opts, roleMX) }

// NewSubmission returns the port 587 server (465 is the same server on a TLS listener): mail
// from our own authenticated users. AUTH is offered only over TLS.
func NewSubmission(opts Options) *gosmtp.Server { return newServer(opts, roleSubmission) }

func newServer(opts Options, r role) *gosmtp.Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	b := &backend{opts: opts, role: r, log: opts.Logger.With("server", r.String())}
	srv := gosmtp.NewServer(b)
	srv.Domain = opts.Hostname
	srv.TLSConfig = opts.TLS
	srv.EnableSMTPUTF8 = true
	// SIZE advertises the largest limit of any domain (RFC 1870); smaller per-domain limits are
	// enforced at RCPT (SIZE=) and on the bytes received. go-smtp reads this field without a
	// lock, so it is fixed here: a reload that raises the largest limit takes a restart to be
	// advertised, one that lowers it is enforced at once.
	srv.MaxMessageBytes = opts.Live.Load().MaxMessageSize()
	// The recipient limit is per domain, so the session enforces it, not go-smtp.
	srv.MaxRecipients = 0
	srv.MaxLineLength = maxLineLength
	srv.ReadTimeout = readTimeout
	srv.WriteTimeout = writeTimeout
	srv.AllowInsecureAuth = false
	srv.ErrorLog = errorLog{b.log}
	return srv
}

type backend struct {
	opts Options
	role role
	log  *slog.Logger
	// spoolMem is the memory held by the spools of messages being checked (see spool).
	spoolMem atomic.Int64
	// dnsblRefusals holds the DNSBL zones whose error-code answers were logged (once each).
	dnsblRefusals sync.Map
	// dnsblCarried holds, per connection (*gosmtp.Conn), the DNSBL answers of a session ended by
	// STARTTLS, for the connection's next session (see carryDNSBLAnswers).
	dnsblCarried sync.Map
}

// NewSession is called at the first EHLO/HELO of a connection, and again after STARTTLS.
func (b *backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		b:      b,
		conn:   c,
		ctx:    ctx,
		cancel: cancel,
		remote: c.Conn().RemoteAddr(),
	}
	if state, ok := c.TLSConnectionState(); ok {
		s.tls = &state
	}
	s.log = b.log.With("remote", s.remote.String())
	if carried, ok := b.dnsblCarried.LoadAndDelete(c); ok {
		s.dnsbl = carried.(map[string]dnsblAnswer)
	}
	if b.role == roleSubmission {
		return &submissionSession{session: s}, nil
	}
	return s, nil
}

// errorLog sends go-smtp's own complaints (failed handshakes, recovered panics) to slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) { l.print(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.print(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (l errorLog) print(detail string) {
	if strings.HasPrefix(detail, "panic") {
		l.log.Error("Recovered from a panic serving a connection", "detail", detail)
		return
	}
	l.log.Info("Closed a connection after an error", "detail", detail)
}

// Queue IDs name one transaction in the logs and the Received: header: a random prefix per
// process and a counter, so they are unique across restarts in practice and cheap to make.
var (
	queueIDPrefix  = randomUint32()
	queueIDCounter atomic.Uint64
)

func randomUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return binary.BigEndian.Uint32(b[:])
}

func newQueueID() string {
	return fmt.Sprintf("%08X%08X", queueIDPrefix, uint32(queueIDCounter.Add(1)))
}
