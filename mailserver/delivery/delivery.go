package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubemail/kubemail/mailserver/autoreply"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/msgauth/dnscache"
	"github.com/kubemail/kubemail/mailserver/mtasts"
	"github.com/kubemail/kubemail/mailserver/store"
)

// LocalDeliverer puts a message into our own mailboxes; *store.Store satisfies it.
type LocalDeliverer interface {
	// Deliver is all-or-nothing and unchecked: the server's own notices (DSNs) reach a full
	// mailbox.
	Deliver(ctx context.Context, mailboxes []string, prefix []byte, body io.Reader) (int64, error)
	// DeliverWithQuota is all-or-nothing; a mailbox the message would take past its quota
	// makes it fail with a *store.QuotaError naming those mailboxes.
	DeliverWithQuota(ctx context.Context, mailboxes []string, quota store.QuotaFunc, prefix []byte, body io.Reader) (int64, error)
}

// TLSMode is how a connection to a smarthost is secured.
type TLSMode string

const (
	STARTTLS    TLSMode = "starttls" // STARTTLS required, certificate verified
	ImplicitTLS TLSMode = "tls"      // TLS from the first byte, certificate verified
	NoTLS       TLSMode = "none"     // plain text, even for AUTH
)

// Smarthost is a relay that takes outbound mail.
type Smarthost struct {
	Host     string
	Port     int     // 0 means 587
	TLS      TLSMode // "" means STARTTLS
	Username string  // AUTH PLAIN when not empty
	Password string
}

// SmarthostRule sends the mail of some senders' domains through a smarthost.
type SmarthostRule struct {
	SenderDomains []string // empty: every sender
	Smarthost     Smarthost
}

// Routing is the part of the config that can change at run time (SetRouting).
type Routing struct {
	// Static maps a recipient domain to "host:port" (other MailDomains this server knows).
	Static map[string]string
	// Smarthosts in order; the first that applies to the sender is used.
	Smarthosts []SmarthostRule
}

// Timeouts of the SMTP client, RFC 5321 4.5.3.2. Zero fields take the defaults.
type Timeouts struct {
	Connect  time.Duration // 30 s
	Command  time.Duration // greeting, EHLO, MAIL, RCPT: 5 min
	DataInit time.Duration // reply to DATA: 2 min
	Block    time.Duration // writing each block of data: 3 min
	DataEnd  time.Duration // reply to the final dot: 10 min
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, 30*time.Second)
	def(&t.Command, 5*time.Minute)
	def(&t.DataInit, 2*time.Minute)
	def(&t.Block, 3*time.Minute)
	def(&t.DataEnd, 10*time.Minute)
	return t
}

// Options configure a Client.
type Options struct {
	Hostname string       // our name in EHLO
	Live     *config.Live // our domains and mailboxes
	Local    LocalDeliverer
	Routing  Routing
	// Resolver for MX and A/AAAA lookups; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// MXPort is the port of MX hosts and of static routes without one; 0 means 25.
	MXPort int
	// RootCAs verify the certificates of smarthosts and of MX hosts under an MTA-STS policy;
	// nil means the system's roots. Tests set it to trust their CA.
	RootCAs *tls.Config
	// MTASTS finds the recipient domains' MTA-STS policies (RFC 8461); nil delivers to MX hosts
	// with opportunistic TLS whatever the domain publishes.
	MTASTS *mtasts.Policies
	// MaxConnsPerHost bounds the concurrent transactions per destination; 0 means 20 (Postfix's
	// default_destination_concurrency_limit).
	MaxConnsPerHost int
	// IdleTimeout is how long a connection waits for the next message; 0 means 5 s, <0 none.
	IdleTimeout time.Duration
	// MaxMessagesPerConn is how many messages one connection carries; 0 means 100.
	MaxMessagesPerConn int
	Timeouts           Timeouts
	// DKIM signs the mail sent over SMTP (not local deliveries); nil sends it as queued.
	DKIM Signer
	// AutoReply is told of every local delivery, to send the mailboxes' out-of-office replies
	// (package autoreply); nil sends none.
	AutoReply *autoreply.Responder
	Logger    *slog.Logger
}

// Message is one queued message on its way to some of its recipients.
type Message struct {
	ID    string   // queue ID, for the logs
	From  string   // envelope sender; "" is the null sender
	Rcpts []string // envelope recipients
	Size  int64    // bytes, for SIZE=
	// Open returns the message (Received: header and all); it may be called more than once.
	Open func() (io.ReadCloser, error)
	// Signature is the DKIM-Signature field (CRLF-terminated) made when the message was queued;
	// it goes in front of the message on its way to other servers, not into local mailboxes.
	// Without it the message is signed at its first transaction (DKIM).
	Signature []byte

	lazy *lazySignature // signed at the first transaction (ready)
}

// Result is what became of one recipient.
type Result struct {
	Rcpt string
	// Code is the SMTP reply code the deciding server gave, or 0 when no server replied.
	Code int
	// Status is the enhanced status code, always set: "2.0.0", "4.4.1", "5.1.1".
	Status string
	// Text is the reply text, or the local reason when no server replied.
	Text string
	// RemoteMTA is the host that gave the reply; "" for local delivery or no reply.
	RemoteMTA string
}

// Delivered reports a class 2 result.
func (r Result) Delivered() bool { return strings.HasPrefix(r.Status, "2") }

// Permanent reports a class 5 result: no retry.
func (r Result) Permanent() bool { return strings.HasPrefix(r.Status, "5") }

// Diagnostic is the result as one line: the SMTP reply, or the local reason.
func (r Result) Diagnostic() string {
	if r.Code != 0 {
		return fmt.Sprintf("%d %s %s", r.Code, r.Status, r.Text)
	}
	return r.Text
}

func (r Result) String() string {
	if r.RemoteMTA != "" {
		return r.Diagnostic() + " (" + r.RemoteMTA + ")"
	}
	return r.Diagnostic()
}

// local makes a Result no server gave.
func local(rcpt, status, format string, args ...any) Result {
	return Result{Rcpt: rcpt, Status: status, Text: fmt.Sprintf(format, args...)}
}

// Client delivers messages. It is safe for concurrent use.
type Client struct {
	opts    Options
	log     *slog.Logger
	routing atomic.Pointer[Routing]

	mu    sync.Mutex
	hosts map[string]*hostState // by destination "host:port"
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.MXPort == 0 {
		opts.MXPort = 25
	}
	if opts.MaxConnsPerHost <= 0 {
		opts.MaxConnsPerHost = 20
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 5 * time.Second
	}
	if opts.MaxMessagesPerConn <= 0 {
		opts.MaxMessagesPerConn = 100
	}
	opts.Timeouts = opts.Timeouts.withDefaults()
	c := &Client{opts: opts, log: opts.Logger, hosts: map[string]*hostState{}}
	r := opts.Routing
	c.routing.Store(&r)
	return c
}

// SetRouting replaces the static routes and smarthosts (on a config reload).
func (c *Client) SetRouting(r Routing) { c.routing.Store(&r) }

// NewResolver returns Go's resolver with a cache of the answers (package dnscache), sending the
// queries it cannot answer from the cache to the DNS server at addr ("HOST:PORT", for
// --dns-resolver), or to the name servers of /etc/resolv.conf when addr is "".
func NewResolver(addr string) *net.Resolver {
	return dnscache.New(dnscache.Options{}).Resolver(addr)
}

// Close closes the idle connections.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hosts {
		h.closeIdle()
	}
}

// Deliver takes m to each of its recipients and returns one Result per recipient, in the order
// of m.Rcpts. Recipients of different domains are delivered concurrently.
func (c *Client) Deliver(ctx context.Context, m *Message) []Result {
	results := make([]Result, len(m.Rcpts))
	byDomain := map[string][]int{}
	var order []string
	for i, rcpt := range m.Rcpts {
		_, domain, ok := config.SplitAddress(rcpt)
		if !ok {
			results[i] = local(rcpt, "5.1.3", "Bad recipient address syntax")
			continue
		}
		if _, seen := byDomain[domain]; !seen {
			order = append(order, domain)
		}
		byDomain[domain] = append(byDomain[domain], i)
	}
	remote := m
	switch {
	case len(m.Signature) > 0:
		remote = m.withSignature(m.Signature)
	case c.opts.DKIM != nil && slices.ContainsFunc(order, func(d string) bool { return !c.isLocal(d) }):
		remote = c.signLater(ctx, m)
	}
	deliver := func(domain string) {
		idx := byDomain[domain]
		rcpts := make([]string, len(idx))
		for j, i := range idx {
			rcpts[j] = m.Rcpts[i]
		}
		msg := remote
		if c.isLocal(domain) {
			msg = m
		}
		for j, r := range c.deliverDomain(ctx, msg, domain, rcpts) {
			results[idx[j]] = r
		}
	}
	if len(order) == 1 {
		deliver(order[0]) // the common case: no goroutine to hand over to
	} else {
		var wg sync.WaitGroup
		for _, domain := range order {
			wg.Go(func() { deliver(domain) })
		}
		wg.Wait()
	}
	for _, r := range results {
		c.log.Info("Delivery attempted", "id", m.ID, "from", m.From, "rcpt", r.Rcpt,
			"status", r.Status, "code", r.Code, "reply", r.Text, "remote", r.RemoteMTA)
	}
	return results
}

// deliverDomain delivers to the recipients of one domain along its route.
func (c *Client) deliverDomain(ctx context.Context, m *Message, domain string, rcpts []string) []Result {
	if c.isLocal(domain) {
		return c.deliverLocal(ctx, m, rcpts)
	}
	rt := c.routing.Load()
	if hostport, ok := rt.Static[domain]; ok {
		host, port, err := splitHostPort(hostport, c.opts.MXPort)
		if err != nil {
			return fill(rcpts, local("", "4.3.5", "Static route for %s is invalid: %v", domain, err))
		}
		return c.deliverHosts(ctx, m, rcpts, []string{host}, port, dialPlan{tls: opportunistic})
	}
	if sh := rt.smarthostFor(m.From); sh != nil {
		port := sh.Port
		if port == 0 {
			port = 587
		}
		plan := dialPlan{tls: required, username: sh.Username, password: sh.Password}
		switch sh.TLS {
		case ImplicitTLS:
			plan.tls = implicit
		case NoTLS:
			plan.tls = plain
		}
		return c.deliverHosts(ctx, m, rcpts, []string{sh.Host}, port, plan)
	}
	hosts, res := c.lookupMX(ctx, domain)
	if res != nil {
		return fill(rcpts, *res)
	}
	plan := dialPlan{tls: opportunistic, mx: true}
	if hosts, res = c.applyMTASTS(ctx, m, domain, hosts, &plan); res != nil {
		return fill(rcpts, *res)
	}
	return c.deliverHosts(ctx, m, rcpts, hosts, c.opts.MXPort, plan)
}

// isLocal reports whether domain is one of ours.
func (c *Client) isLocal(domain string) bool {
	return c.opts.Live != nil && c.opts.Live.Load().Domain(domain) != nil
}

// smarthostFor returns the smarthost for mail from sender, or nil.
func (r *Routing) smarthostFor(sender string) *Smarthost {
	_, domain, _ := config.SplitAddress(sender)
	for i := range r.Smarthosts {
		rule := &r.Smarthosts[i]
		if len(rule.SenderDomains) == 0 {
			return &rule.Smarthost
		}
		for _, d := range rule.SenderDomains {
			if domain != "" && strings.EqualFold(d, domain) {
				return &rule.Smarthost
			}
		}
	}
	return nil
}

// deliverLocal puts the message into our own mailboxes: one all-or-nothing store delivery into
// all of them, checked against their quotas. A mailbox the message would take past its quota
// gets 452 4.2.2 (retried, like a remote "mailbox full"; bounced at expiry) and the others are
// delivered without it, so one full mailbox neither holds back nor duplicates the rest.
func (c *Client) deliverLocal(ctx context.Context, m *Message, rcpts []string) []Result {
	dir := c.opts.Live.Load()
	results := make([]Result, len(rcpts))
	byMailbox := map[string][]int{} // mailbox → indexes of its recipients (aliases, plus-addresses)
	var mailboxes []string
	quotas := map[string]int64{}
	for i, rcpt := range rcpts {
		mb := dir.Lookup(rcpt)
		if mb == nil {
			results[i] = Result{Rcpt: rcpt, Code: 550, Status: "5.1.1", Text: "No such mailbox here"}
			continue
		}
		if _, ok := byMailbox[mb.Address]; !ok {
			mailboxes = append(mailboxes, mb.Address)
			quotas[mb.Address] = mb.Quota
		}
		byMailbox[mb.Address] = append(byMailbox[mb.Address], i)
	}
	set := func(mailbox string, res Result) {
		for _, i := range byMailbox[mailbox] {
			res.Rcpt = rcpts[i]
			results[i] = res
		}
	}
	full := Result{Code: 452, Status: "4.2.2", Text: "Mailbox full"}
	// Each round delivers, or takes the full mailboxes out and tries the others again: at
	// most one round per mailbox.
	for len(mailboxes) > 0 {
		res, over := c.storeLocal(ctx, m, mailboxes, func(mb string) int64 { return quotas[mb] })
		rest := slices.DeleteFunc(slices.Clone(mailboxes), func(mb string) bool { return slices.Contains(over, mb) })
		if len(rest) < len(mailboxes) {
			for _, mb := range over {
				set(mb, full)
			}
			mailboxes = rest
			continue
		}
		for _, mb := range mailboxes {
			set(mb, res)
		}
		if res.Delivered() {
			c.autoReply(m, mailboxes)
		}
		break
	}
	return results
}

// autoReply hands a local delivery to the out-of-office responder, with the stored header.
func (c *Client) autoReply(m *Message, mailboxes []string) {
	if !c.opts.AutoReply.Wants(mailboxes) {
		return
	}
	r, err := m.Open()
	if err != nil {
		c.log.Warn("Failed to read the header for automatic replies", "id", m.ID, "err", err)
		return
	}
	header := autoreply.ReadHeader(r)
	r.Close()
	c.opts.AutoReply.Delivered(m.From, mailboxes, header)
}

// storeLocal makes one all-or-nothing delivery into the mailboxes and returns its result, and
// the mailboxes the message would take past their quotas when that is why it failed.
func (c *Client) storeLocal(ctx context.Context, m *Message, mailboxes []string, quota store.QuotaFunc) (Result, []string) {
	if c.opts.Local == nil {
		return Result{Status: "4.3.0", Text: "Local delivery is not configured"}, nil
	}
	r, err := m.Open()
	if err != nil {
		return Result{Status: "4.3.0", Text: "Reading the queued message failed: " + err.Error()}, nil
	}
	defer r.Close()
	if _, err := c.opts.Local.DeliverWithQuota(ctx, mailboxes, quota, nil, r); err != nil {
		var over *store.QuotaError
		var full []string
		if errors.As(err, &over) {
			full = over.Mailboxes
		}
		return Result{Status: "4.3.0", Text: "Writing into the local mailbox failed: " + err.Error()}, full
	}
	return Result{Code: 250, Status: "2.0.0", Text: "Delivered to the local mailbox"}, nil
}

// fill gives every recipient the same result.
func fill(rcpts []string, r Result) []Result {
	out := make([]Result, len(rcpts))
	for i, rcpt := range rcpts {
		out[i] = r
		out[i].Rcpt = rcpt
	}
	return out
}

func splitHostPort(hostport string, defPort int) (string, int, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, defPort, nil //nolint:nilerr // no port given
	}
	var port int
	if _, err := fmt.Sscanf(portStr, "%d", &port); err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hostport)
	}
	return host, port, nil
}
