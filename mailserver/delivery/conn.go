package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

type tlsPolicy int

const (
	opportunistic tlsPolicy = iota // STARTTLS when offered, unverified, plain text on failure
	required                       // STARTTLS, verified
	implicit                       // TLS at once, verified
	plain                          // never TLS
	stsEnforce                     // MTA-STS enforce: STARTTLS, verified for the MX host name
)

// dialPlan is how to talk to a destination.
type dialPlan struct {
	tls                tlsPolicy
	username, password string
	mx                 bool   // hosts from MX records (or the implicit MX): absolute names
	stsTesting         bool   // an MTA-STS policy in mode testing: log what enforce would refuse
	stsDomain          string // the domain whose MTA-STS policy applies, for the logs
}

// hostState is one destination: its concurrency limit and idle connections.
type hostState struct {
	sem  chan struct{}
	mu   sync.Mutex
	idle []*conn
}

// conn is one open SMTP session with a destination.
type conn struct {
	cl       *gosmtp.Client
	raw      net.Conn
	host     string // the host name, for Remote-MTA
	messages int    // transactions done on it
	timer    *time.Timer
}

func (cn *conn) close() { cn.cl.Close() }

func (c *Client) host(key string) *hostState {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hosts[key]
	if h == nil {
		h = &hostState{sem: make(chan struct{}, c.opts.MaxConnsPerHost)}
		c.hosts[key] = h
	}
	return h
}

// takeIdle returns an idle connection, or nil.
func (h *hostState) takeIdle() *conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.idle) > 0 {
		cn := h.idle[len(h.idle)-1]
		h.idle = h.idle[:len(h.idle)-1]
		if cn.timer == nil || cn.timer.Stop() {
			return cn
		}
		// The idle timer fired and is closing it.
	}
	return nil
}

// putIdle keeps cn for the next message, or ends the session when it has carried enough.
func (c *Client) putIdle(h *hostState, cn *conn) {
	cn.messages++
	if c.opts.IdleTimeout < 0 || cn.messages >= c.opts.MaxMessagesPerConn {
		c.quit(cn)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cn.timer = time.AfterFunc(c.opts.IdleTimeout, func() {
		h.mu.Lock()
		for i, x := range h.idle {
			if x == cn {
				h.idle = append(h.idle[:i], h.idle[i+1:]...)
				break
			}
		}
		h.mu.Unlock()
		c.quit(cn)
	})
	h.idle = append(h.idle, cn)
}

func (h *hostState) closeIdle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cn := range h.idle {
		if cn.timer == nil || cn.timer.Stop() {
			cn.close()
		}
	}
	h.idle = nil
}

// quit ends a session politely, waiting at most 10 s for the server's 221.
func (c *Client) quit(cn *conn) {
	cn.cl.CommandTimeout = 10 * time.Second
	if err := cn.cl.Quit(); err != nil {
		cn.close()
	}
}

// deliverHosts tries the hosts in order (MX hosts best first, or one smarthost or static route)
// until one takes the transaction.
func (c *Client) deliverHosts(ctx context.Context, m *Message, rcpts []string, hosts []string, port int, plan dialPlan) []Result {
	var last *Result
	allPermanent := true
	note := func(r *Result) {
		last = r
		if !r.Permanent() {
			allPermanent = false
		}
	}
	for _, host := range hosts {
		key := fmt.Sprintf("%s/%d/%s", net.JoinHostPort(host, fmt.Sprint(port)), plan.tls, plan.username)
		h := c.host(key)
		select {
		case h.sem <- struct{}{}:
		case <-ctx.Done():
			return fill(rcpts, local("", "4.4.7", "Delivery interrupted: %v", ctx.Err()))
		}
		results, r := c.deliverHost(ctx, h, m, rcpts, host, port, plan)
		<-h.sem
		if results != nil {
			return results
		}
		note(r)
	}
	if last == nil {
		return fill(rcpts, local("", "4.4.4", "No host to deliver to"))
	}
	res := *last
	if !allPermanent && res.Permanent() {
		res = local("", "4.4.1", "No host accepted the connection; last: %s", res.Diagnostic())
	}
	return fill(rcpts, res)
}

// deliverHost runs the transaction with one host: on an idle connection or a new one to each of
// its addresses in turn. It returns the results, or nil and why no session could be opened.
func (c *Client) deliverHost(ctx context.Context, h *hostState, m *Message, rcpts []string, host string, port int, plan dialPlan) ([]Result, *Result) {
	if cn := h.takeIdle(); cn != nil {
		if results, ok := c.transact(ctx, h, cn, m, rcpts); ok {
			return results, nil
		}
		// The server closed the idle connection meanwhile: open a new one.
	}
	addrs, res := c.lookupAddrs(ctx, host, plan.mx)
	if res != nil {
		return nil, res
	}
	var last *Result
	for _, ip := range addrs {
		addr := netip.AddrPortFrom(ip, uint16(port))
		cn, res := c.dial(ctx, host, addr, plan)
		if res != nil && plan.tls == opportunistic && res.Status == statusTLSFailed {
			// RFC 7435: opportunistic TLS falls back to plain text when the handshake fails.
			c.log.Info("Retried in plain text after a failed TLS handshake", "id", m.ID, "host", host, "addr", addr.String(), "reason", res.Text)
			cn, res = c.dial(ctx, host, addr, dialPlan{tls: plain})
		}
		if res != nil {
			c.log.Info("Connection failed", "id", m.ID, "host", host, "addr", addr.String(), "reason", res.String())
			last = res
			if ctx.Err() != nil {
				break
			}
			continue
		}
		results, _ := c.transact(ctx, h, cn, m, rcpts)
		return results, nil
	}
	return nil, last
}

// statusTLSFailed marks a failed opportunistic TLS handshake, retried in plain text.
const statusTLSFailed = "4.7.0"

// dial opens an SMTP session with the server at addr, greeted, TLS as planned, authenticated.
func (c *Client) dial(ctx context.Context, host string, addr netip.AddrPort, plan dialPlan) (*conn, *Result) {
	t := c.opts.Timeouts
	d := net.Dialer{Timeout: t.Connect}
	raw, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, ptr(local("", "4.4.1", "connect to %s[%s]: %v", host, addr, unwrapOpError(err)))
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	wc := &deadlineConn{Conn: raw, block: t.Block}
	fail := func(r Result) (*conn, *Result) {
		raw.Close()
		if r.RemoteMTA == "" && r.Code != 0 {
			r.RemoteMTA = host
		}
		return nil, &r
	}
	var cl *gosmtp.Client
	encrypted := plan.tls == implicit
	switch plan.tls {
	case implicit:
		tc := tls.Client(wc, c.verifiedTLS(host))
		raw.SetDeadline(time.Now().Add(t.Command))
		if err := tc.Handshake(); err != nil {
			return fail(local("", "4.7.5", "TLS handshake with %s[%s] failed: %v", host, addr, err))
		}
		cl = gosmtp.NewClient(tc)
	case plain:
		cl = gosmtp.NewClient(wc)
	default:
		netConn, r := c.startTLS(wc, host, plan)
		if r != nil {
			return fail(*r)
		}
		encrypted = overTLS(netConn)
		cl = gosmtp.NewClient(netConn)
	}
	raw.SetDeadline(time.Time{})
	cl.CommandTimeout = t.Command
	cl.SubmissionTimeout = t.DataEnd
	if err := cl.Hello(c.opts.Hostname); err != nil {
		return fail(replyResult("", err, "4.4.2", "greeting or EHLO from "+host))
	}
	if plan.username != "" {
		if ok, _ := cl.Extension("AUTH"); !ok || !cl.SupportsAuth("PLAIN") {
			return fail(local("", "4.7.0", "%s does not offer AUTH PLAIN", host))
		}
		if err := cl.Auth(saslPlain(plan.username, plan.password)); err != nil {
			// A refused login is a configuration problem the operator can fix: retried.
			r := replyResult("", err, "4.7.0", "AUTH at "+host)
			r.Status = "4" + r.Status[1:]
			return fail(r)
		}
	}
	countConnection(encrypted)
	return &conn{cl: cl, raw: raw, host: host}, nil
}

// startTLS reads the greeting and says EHLO itself, then issues STARTTLS when offered (RFC 3207)
// and returns the connection go-smtp's client continues on: go-smtp cannot STARTTLS on a client
// it has greeted under our own EHLO name, so the session is handed over after the handshake,
// with a synthetic greeting for go-smtp to read. Without STARTTLS go-smtp says EHLO again,
// which RFC 5321 4.1.4 allows.
func (c *Client) startTLS(wc *deadlineConn, host string, plan dialPlan) (net.Conn, *Result) {
	t := c.opts.Timeouts
	wc.SetDeadline(time.Now().Add(t.Command))
	tp := textproto.NewConn(wc)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, ptr(replyResult("", err, "4.4.2", "greeting from "+host))
	}
	handOver := func(conn net.Conn) net.Conn {
		return &greetingConn{Conn: conn, r: io.MultiReader(strings.NewReader("220 "+host+" ESMTP\r\n"), conn)}
	}
	_, msg, err := cmd(tp, 250, "EHLO %s", c.opts.Hostname)
	if err != nil {
		var te *textproto.Error
		if errors.As(err, &te) && (te.Code == 500 || te.Code == 502) && plan.tls == opportunistic {
			return handOver(wc), nil // go-smtp falls back to HELO
		}
		return nil, ptr(replyResult("", err, "4.4.2", "EHLO to "+host))
	}
	if !hasExtension(msg, "STARTTLS") {
		if plan.tls == required {
			return nil, ptr(local("", "4.7.5", "%s does not offer STARTTLS, which the smarthost needs", host))
		}
		// RFC 8461 5: a policy host must offer STARTTLS.
		if r := c.stsFailure(plan, host, stsNoSTARTTLS, "4.7.4", "%s does not offer STARTTLS", host); r != nil {
			return nil, r
		}
		return handOver(wc), nil
	}
	if _, _, err := cmd(tp, 220, "STARTTLS"); err != nil {
		if plan.tls == required {
			return nil, ptr(replyResult("", err, "4.7.5", "STARTTLS at "+host))
		}
		if r := c.stsFailure(plan, host, stsTLSFailed, "4.7.5", "STARTTLS at %s failed: %v", host, err); r != nil {
			return nil, r
		}
		return nil, ptr(local("", statusTLSFailed, "STARTTLS at %s: %v", host, err))
	}
	cfg := c.verifiedTLS(host)
	if plan.tls == opportunistic {
		// RFC 7435: encryption without authentication beats plain text; MX certificates are
		// verified only when the domain's MTA-STS policy (enforce) says they must be.
		cfg.InsecureSkipVerify = true
	}
	tc := tls.Client(wc, cfg)
	if err := tc.Handshake(); err != nil {
		if plan.tls == required {
			return nil, ptr(local("", "4.7.5", "TLS handshake with %s failed: %v", host, err))
		}
		// RFC 8461 4.2: under enforce a certificate not valid for the MX host is a failure.
		if r := c.stsHandshakeFailure(plan, host, err); r != nil {
			return nil, r
		}
		return nil, ptr(local("", statusTLSFailed, "TLS handshake with %s failed: %v", host, err))
	}
	if plan.tls == stsEnforce {
		MTASTSResults.WithLabelValues("enforce", stsVerified).Inc()
	}
	c.stsVerify(plan, host, tc.ConnectionState())
	return handOver(tc), nil
}

func (c *Client) verifiedTLS(host string) *tls.Config {
	var cfg *tls.Config
	if c.opts.RootCAs != nil {
		cfg = c.opts.RootCAs.Clone()
	} else {
		cfg = &tls.Config{}
	}
	cfg.ServerName = host
	cfg.MinVersion = tls.VersionTLS12
	return cfg
}

func cmd(tp *textproto.Conn, expect int, format string, args ...any) (int, string, error) {
	id, err := tp.Cmd(format, args...)
	if err != nil {
		return 0, "", err
	}
	tp.StartResponse(id)
	defer tp.EndResponse(id)
	return tp.ReadResponse(expect)
}

// hasExtension looks for a keyword in an EHLO reply's lines after the first.
func hasExtension(ehlo, keyword string) bool {
	lines := strings.Split(ehlo, "\n")
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], keyword) {
			return true
		}
	}
	return false
}

// greetingConn replays a synthetic greeting before the connection's own bytes.
type greetingConn struct {
	net.Conn
	r io.Reader
}

func (g *greetingConn) Read(p []byte) (int, error) { return g.r.Read(p) }

// deadlineConn bounds every write: RFC 5321 4.5.3.2.5, 3 minutes per block of data. go-smtp sets
// no deadline while the message is written.
type deadlineConn struct {
	net.Conn
	block time.Duration
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	d.Conn.SetWriteDeadline(time.Now().Add(d.block))
	return d.Conn.Write(p)
}

func ptr[T any](v T) *T { return &v }

// unwrapOpError drops the "dial tcp 1.2.3.4:25:" prefix that the message already has.
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
