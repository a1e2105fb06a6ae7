package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/msgauth"
)

// session is one SMTP session on the MX, and the common part of a submission session.
//
// go-smtp calls Mail, Rcpt and Reset on the connection's goroutine, but Data runs on a goroutine
// of its own for BDAT, and Reset and Logout may then run while Data does (RSET, a dropped
// connection, Server.Close). So the transaction is guarded by mu, and Data works on a copy.
type session struct {
	b      *backend
	conn   *gosmtp.Conn
	ctx    context.Context // ends at Logout, aborting a delivery in progress
	cancel context.CancelFunc
	remote net.Addr
	tls    *tls.ConnectionState
	log    *slog.Logger

	// user is the authenticated mailbox (submission only); set by Auth, read by Mail.
	user *config.Mailbox

	mu       sync.Mutex
	tx       *transaction
	rejected int  // rejected recipients on this connection
	hangUp   bool // 421 sent: refuse whatever the client had pipelined after it
	// iprev is the client's iprev check, started at the first checked MAIL (MX, clients
	// outside the trusted networks), once per connection.
	iprev *msgauth.IPRevCheck
	// dnsbl holds the DNSBL answers about the client, asked at the first RCPT that needs each
	// list (see checkDNSBLs).
	dnsbl map[string]dnsblAnswer
}

// transaction is the state between MAIL and the end of DATA/BDAT or RSET.
type transaction struct {
	id        string
	start     time.Time
	helo      string            // the EHLO name in force at MAIL (a later EHLO may change it)
	dir       *config.Directory // RFC-wise one config per transaction: taken at MAIL
	from      string            // reverse-path as sent; "" is the null sender
	utf8      bool              // MAIL ... SMTPUTF8
	size      int64             // MAIL ... SIZE=, 0 if not given
	rcpts     []string          // forward-paths accepted, as sent
	mailboxes []string          // primary addresses reached, each once
	remote    []string          // recipients in other domains, for the queue
	groups    []*config.Group   // groups reached, each once, in RCPT order (see groups.go)
	sizeLimit int64             // smallest MaxMessageSize of the recipients' domains
	rcptLimit int               // smallest MaxRecipients of the recipients' domains
	user      *config.Mailbox   // the authenticated sender (submission), nil on the MX
	// spf is the SPF check started at MAIL when the message is to be verified (MX, clients
	// outside the trusted networks, Options.Verifier set); nil otherwise.
	spf         *msgauth.SPFCheck
	iprev       *msgauth.IPRevCheck // the session's, when spf is set
	authResults string              // summary of the checks, for the log
	// junk maps a mailbox to the DNSBL zone (action Junk) that sends its copy into Junk.
	junk map[string]string
	// groupJunk maps a group's address to the DNSBL zone (action Junk) that listed the client at
	// its RCPT: the group's copy is suspect (see groupCopies).
	groupJunk map[string]string
	// quarantine is the From: domain whose DMARC p=quarantine the message failed: every copy
	// goes into Junk (RFC 7489 6.3).
	quarantine string
}

var (
	_ gosmtp.Session     = (*session)(nil)
	_ gosmtp.AuthSession = (*submissionSession)(nil)
)

// Mail opens a transaction (RFC 5321 4.1.1.2). On the MX any syntactically valid sender is
// accepted, the null sender <> included (RFC 5321 4.5.5: bounces must get through).
func (s *session) Mail(from string, opts *gosmtp.MailOptions) error {
	_, err := s.openTransaction(from, opts, s.startChecks)
	return err
}

// openTransaction checks the reverse-path and starts a transaction with the live directory;
// authorize, if not nil, may refuse the sender or fill in the transaction first.
func (s *session) openTransaction(from string, opts *gosmtp.MailOptions, authorize func(*transaction) error) (*transaction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hangUp {
		return nil, errTooManyErrors
	}
	if s.tx != nil {
		return nil, errNestedMail
	}
	if d := s.b.opts.Draining; d != nil && d.Load() {
		s.log.Info("Refused a transaction", "reason", "server shutting down")
		s.hangUp = true
		closeRead(s.conn.Conn())
		return nil, errShuttingDown
	}
	if from != "" {
		if _, err := parseAddress(from, opts.UTF8, errBadSender); err != nil {
			s.logRejected("Rejected sender", nil, from, "", err, "bad sender address")
			return nil, err
		}
	}
	dir := s.b.opts.Live.Load()
	tx := &transaction{
		id:        newQueueID(),
		start:     time.Now(),
		helo:      s.conn.Hostname(),
		dir:       dir,
		from:      from,
		utf8:      opts.UTF8,
		size:      opts.Size,
		sizeLimit: dir.MaxMessageSize(),
		rcptLimit: math.MaxInt, // until the first recipient's domain sets it
	}
	if authorize != nil {
		if err := authorize(tx); err != nil {
			return nil, err
		}
	}
	s.tx = tx
	return tx, nil
}

// Rcpt adds a recipient (RFC 5321 4.1.1.3) if it is one of our mailboxes.
func (s *session) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := s.tx
	if s.hangUp {
		return errTooManyErrors
	}
	if tx == nil {
		return errors.New("RCPT without MAIL") // go-smtp checks this first
	}
	reason, err := s.checkRecipient(tx, to)
	if err == nil {
		return nil
	}
	if err == errMailboxFull || err == errLargerThanQuota {
		metrics.QuotaRefusals.WithLabelValues(s.b.role.String(), "RCPT").Inc()
	}
	if err == errTooManyRecipients || err == errTooBig || err == errMailboxFull || err == errLargerThanQuota {
		// Not a sign of abuse: a pipelining client sends all its RCPTs before it sees a 452, and
		// a list server may well have several full mailboxes to reach.
		s.logRejected("Rejected recipient", tx, tx.from, to, err, reason)
		return err
	}
	s.rejected++
	if s.rejected > maxRejectedRecipients {
		// Write the 421 and close: shutting our read side makes go-smtp's next read see EOF.
		s.logRejected("Rejected recipient", tx, tx.from, to, errTooManyErrors, reason+"; too many rejected recipients")
		s.hangUp, s.tx = true, nil
		closeRead(s.conn.Conn())
		return errTooManyErrors
	}
	s.logRejected("Rejected recipient", tx, tx.from, to, err, reason)
	return err
}

// checkRecipient decides one RCPT and, if accepted, adds it to tx. The order of checks puts the
// most useful answer first: syntax, relaying, the mailbox, then the limits.
func (s *session) checkRecipient(tx *transaction, to string) (reason string, err error) {
	addr, err := parseAddress(to, tx.utf8, errBadRecipient)
	if err != nil {
		return "bad recipient address", err
	}
	dom := tx.dir.Domain(addr.domain)
	if dom == nil {
		return s.checkRemoteRecipient(tx, addr)
	}
	if trick := relayTrick(addr.local); trick != "" {
		return trick, errRelayDenied
	}
	// Blocklists before the mailbox: a listed client learns nothing of which addresses exist
	// (Postfix's reject_rbl_client comes before reject_unlisted_recipient too).
	junkZone, reason, err := s.checkDNSBLs(tx, dom)
	if err != nil {
		return reason, err
	}
	mb := tx.dir.Lookup(addr.String())
	if mb == nil {
		if g := tx.dir.Group(addr.String()); g != nil {
			return s.checkGroupRecipient(tx, dom, g, to, junkZone)
		}
		return "unknown local address", errNoSuchUser
	}
	if tx.size > domainSizeLimit(dom) {
		// RFC 1870 6.1: a declared SIZE over this recipient's limit is refused at RCPT.
		return "declared SIZE over the domain's limit", errTooBig
	}
	if reason, err := s.checkQuota(tx, mb); err != nil {
		return reason, err
	}
	if reason, err := tx.admitLocal(dom, to); err != nil {
		return reason, err
	}
	if !slices.Contains(tx.mailboxes, mb.Address) {
		// Aliases, plus-addresses and repeats of one mailbox get one copy.
		tx.mailboxes = append(tx.mailboxes, mb.Address)
	}
	if junkZone != "" {
		if tx.junk == nil {
			tx.junk = map[string]string{}
		}
		tx.junk[mb.Address] = junkZone
	}
	return "", nil
}

// admitLocal applies the domain's recipient limit to a local recipient (a mailbox or a group)
// and, under it, counts the recipient in with its domain's limits.
func (tx *transaction) admitLocal(dom *config.Domain, to string) (reason string, err error) {
	rcptLimit := dom.MaxRecipients
	if rcptLimit <= 0 {
		rcptLimit = config.DefaultMaxRecipients
	}
	rcptLimit = min(rcptLimit, tx.rcptLimit)
	if len(tx.rcpts) >= rcptLimit {
		// RFC 5321 4.5.3.1.10: the client sends the rest in another transaction.
		return "recipient limit reached", errTooManyRecipients
	}
	tx.rcptLimit = rcptLimit
	tx.sizeLimit = min(tx.sizeLimit, domainSizeLimit(dom))
	tx.rcpts = append(tx.rcpts, to)
	return "", nil
}

// checkRemoteRecipient accepts a recipient in another domain for the queue, only from an
// authenticated user or a trusted network: anything else would make us an open relay.
func (s *session) checkRemoteRecipient(tx *transaction, addr address) (reason string, err error) {
	relayAllowed := s.b.opts.Queue != nil && (tx.user != nil || tx.dir.Trusted(clientIP(s.remote)))
	switch {
	case !relayAllowed && s.b.role == roleSubmission && s.b.opts.Queue == nil:
		return "remote recipient: outbound delivery is not enabled", errNoOutbound
	case !relayAllowed:
		return "domain not served here", errRelayDenied
	case strings.HasPrefix(addr.domain, "["):
		return "address literal", errRelayDenied
	}
	rcptLimit := min(config.DefaultMaxRecipients, tx.rcptLimit)
	if len(tx.rcpts) >= rcptLimit {
		return "recipient limit reached", errTooManyRecipients
	}
	tx.rcptLimit = rcptLimit
	tx.rcpts = append(tx.rcpts, addr.raw)
	// The local part goes on as sent, quoted again if go-smtp unquoted it (RFC 5321 2.4: only
	// the remote host may interpret it).
	remote := quoteAddress(addr.raw[:strings.LastIndexByte(addr.raw, '@')] + "@" + addr.domain)
	if !slices.Contains(tx.remote, remote) {
		tx.remote = append(tx.remote, remote)
	}
	return "", nil
}

func domainSizeLimit(dom *config.Domain) int64 {
	if dom.MaxMessageSize > 0 {
		return dom.MaxMessageSize
	}
	return config.DefaultMaxMessageSize
}

// Reset ends the transaction (RSET, a new EHLO, the end of DATA).
func (s *session) Reset() {
	s.mu.Lock()
	if s.tx != nil && s.tx.spf != nil {
		s.tx.spf.Cancel()
	}
	s.tx = nil
	s.mu.Unlock()
}

// Logout ends the session; a delivery still running is cancelled.
func (s *session) Logout() error {
	s.cancel()
	s.carryDNSBLAnswers()
	return nil
}

// takeTransaction hands the transaction to Data and ends it for the session.
func (s *session) takeTransaction() *transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := s.tx
	s.tx = nil
	if s.hangUp {
		return nil
	}
	return tx
}

func (s *session) logRejected(msg string, tx *transaction, from, rcpt string, err error, reason string) {
	metrics.SMTPRejected(s.b.role.String(), msg, err)
	attrs := make([]any, 0, 12)
	if tx != nil {
		attrs = append(attrs, "id", tx.id)
	}
	attrs = append(attrs, "from", from)
	if rcpt != "" {
		attrs = append(attrs, "rcpt", rcpt)
	}
	var serr *gosmtp.SMTPError
	if errors.As(err, &serr) {
		attrs = append(attrs, "code", serr.Code)
	}
	attrs = append(attrs, "reason", reason)
	s.log.Info(msg, attrs...)
}

// closeRead shuts the reading half of the TCP connection under c (under TLS too), so that the
// reply in flight is still written and then go-smtp's next read ends the connection.
func closeRead(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tcp, ok := c.(interface{ CloseRead() error }); ok {
		_ = tcp.CloseRead()
	}
}
