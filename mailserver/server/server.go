// Package server assembles one kubemail mail server: it loads the config, opens the mailbox
// store, and serves SMTP (MX and submission) and IMAP on their listeners until its context ends.
// `kubemail server` is a thin flag parser over Run; tests run it in-process the same way.
//
// The manifests directory is polled (every 2 s by default) and a changed config that loads is
// put in force without a restart. On every load, once the config is in force, the Maildirs of
// the addresses it lists in Purge (config.PurgeAnnotation: Mailboxes deleted with reclaimPolicy
// Delete) are removed at once, also of a mailbox in use (the store's RemoveMailbox), never one of
// a current mailbox, and the store refuses to make them again until the address is a mailbox
// again; see purger for the rules that keep mail from being lost and purged mailboxes gone.
// The start-up load purges before anything is served.
//
// Access ends when the administrator takes it away: once a reloaded config is in force (and the
// store has revived and purged what it lists), every logged-in IMAP session whose mailbox it no
// longer has, or whose password hash it changed, gets an untagged BYE and is closed
// (imap.Sessions.Revoke); an authenticated submission session gets 421 4.7.0 at its next MAIL,
// RCPT or DATA, checked against the config in force at that command (package smtp). Sessions of
// mailboxes the reload left alone go on. So "delete the Mailbox" or "rotate its password
// Secret" cuts off the sessions that logged in before, within the reload's poll interval.
//
// Out-of-office replies (Mailbox spec.autoReply) come from one autoreply.Responder, told of
// deliveries by both the MX/submission servers and the queue's local delivery, remembering whom
// it answered in DataDir/autoreply and queueing its replies in the outbound queue; it reads the
// config in force, so a reload changes replies at once.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubemail/kubemail/mailserver/admin"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/autoreply"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/imap"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/msgauth"
	"github.com/kubemail/kubemail/mailserver/mtasts"
	"github.com/kubemail/kubemail/mailserver/queue"
	"github.com/kubemail/kubemail/mailserver/smtp"
	"github.com/kubemail/kubemail/mailserver/store"
	"github.com/kubemail/kubemail/mailserver/tlsutil"
)

// Options configure one server. An empty address leaves that listener off.
type Options struct {
	Manifests string // directory of YAML manifests
	DataDir   string // mailboxes, index, self-signed certificate
	Hostname  string // name in greetings and Received: headers

	SMTPAddr, SubmissionAddr, SubmissionsAddr string
	IMAPAddr, IMAPSAddr                       string
	HealthAddr                                string // HTTP /healthz and /readyz

	TLSCert, TLSKey string // PEM files; both empty means a self-signed certificate in DataDir/tls

	// DNSResolver is the HOST:PORT of the DNS server for MX and address lookups of outbound
	// mail; empty means the system resolver.
	DNSResolver string
	// DKIMKeysDir holds the DKIM private keys, <domain>.key; "" means DataDir/dkim.
	DKIMKeysDir string
	// DKIMSelector names the published keys (<selector>._domainkey.<domain>); "" means "kubemail".
	DKIMSelector string
	// DKIMKeyType is the type of the keys made for domains without one: "rsa" (2048 bits, the
	// default) or "ed25519".
	DKIMKeyType string
	// OutboundMXPort is the port outbound mail is delivered to at MX hosts; 0 means 25. Only
	// tests on loopback need another.
	OutboundMXPort int

	// ReloadInterval is how often the manifests are checked for changes; 0 means 2 s.
	ReloadInterval time.Duration

	// MaxConns and MaxConnsPerIP bound the open connections of each listener, in all and per
	// client address; 0 means 2000 and 50. Past them a client is told to come back later.
	MaxConns, MaxConnsPerIP int

	// OnListen, when set, is called with each listener's protocol and address once it listens:
	// how a caller that asked for port 0 learns the port.
	OnListen func(protocol string, addr net.Addr)

	Logger *slog.Logger
}

// Run serves until ctx ends, then closes every listener and waits for the sessions to end.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	hasher := auth.NewHasher()
	// The fingerprint of what is about to be loaded: a change made after this, even before the
	// watcher starts, is a change the watcher reloads.
	loaded := fingerprint(opts.Manifests)
	cfg, err := config.LoadManifests(opts.Manifests, hasher)
	if err != nil {
		return fmt.Errorf("loading the manifests: %w", err)
	}
	live := config.NewLive(config.NewDirectory(cfg))
	log.Info("Loaded config", "manifests", opts.Manifests, "domains", len(cfg.Domains), "mailboxes", len(cfg.Mailboxes))

	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating the data dir: %w", err)
	}
	cert, err := loadTLS(opts, log)
	if err != nil {
		return err
	}
	tlsConfig := cert.TLSConfig()
	st, err := store.Open(opts.DataDir, log)
	if err != nil {
		return fmt.Errorf("opening the mailbox store: %w", err)
	}
	// Out-of-office replies (Mailbox spec.autoReply) go into the queue, which is made after the
	// delivery client that hands the responder its local deliveries; a purge forgets a deleted
	// mailbox's record of whom it answered.
	var q *queue.Queue
	responder := autoreply.New(autoreply.Options{Live: live, Dir: filepath.Join(opts.DataDir, "autoreply"),
		Hostname: opts.Hostname, Logger: log,
		Queue: autoreply.EnqueueFunc(func(ctx context.Context, from string, rcpts []string, prefix []byte, body io.Reader) (string, error) {
			return q.Enqueue(ctx, from, rcpts, prefix, body)
		})})
	// Deleted mailboxes' mail goes before anything is served (see purger).
	purges := newPurger(opts.DataDir, st, log)
	purges.forget = responder.Forget
	purges.emptyTrash()
	purges.apply(cfg)
	authn := auth.NewAuthenticator(live)

	// One DNS answer cache for the MX lookups of delivery and the SPF/DKIM/DMARC checks of
	// inbound mail; "" asks resolv.conf's name servers.
	resolver := delivery.NewResolver(opts.DNSResolver)
	keysDir := opts.DKIMKeysDir
	if keysDir == "" {
		keysDir = filepath.Join(opts.DataDir, "dkim")
	}
	dkimKeys := msgauth.NewKeys(keysDir, msgauth.KeysOptions{Selector: opts.DKIMSelector, Type: msgauth.KeyType(opts.DKIMKeyType)})
	ensureDKIMKeys(dkimKeys, cfg, log)
	// Mail is DKIM-signed once, as it is queued; the client signs only what came into the queue
	// unsigned (larger than queue.SignInMemory, or queued by an older version).
	signer := &msgauth.Signer{Keys: dkimKeys, Live: live}
	// MTA-STS policies (RFC 8461) of recipient domains, kept in DATA/mta-sts across restarts.
	stsPolicies := mtasts.New(mtasts.Options{Resolver: resolver, Dir: filepath.Join(opts.DataDir, "mta-sts"), Logger: log})
	outbound := delivery.Options{Hostname: opts.Hostname, Live: live, Local: st, Routing: routing(cfg),
		MXPort: opts.OutboundMXPort, Resolver: resolver, DKIM: signer, MTASTS: stsPolicies, AutoReply: responder, Logger: log}
	client := delivery.New(outbound)
	defer client.Close()
	// Last, once the sessions and the queue's deliveries are done: the replies being worked out
	// are written into the queue's directory, sent at the next start.
	defer responder.Wait()
	q, err = queue.Open(filepath.Join(opts.DataDir, "queue"), queue.Options{
		Hostname: opts.Hostname, Retry: retryPolicy(cfg), Transport: client, Live: live, Local: st, Signer: signer, Logger: log})
	if err != nil {
		return fmt.Errorf("opening the outbound queue: %w", err)
	}
	queueCtx, stopQueue := context.WithCancel(context.Background())
	queueDone := make(chan struct{})
	go func() { defer close(queueDone); q.Run(queueCtx) }()
	defer func() { stopQueue(); <-queueDone }()
	// The admin socket is a convenience (`kubemail queue`); mail flows without it.
	switch adminSrv, err := admin.Listen(opts.DataDir, q, log); {
	case errors.Is(err, admin.ErrPathTooLong):
		log.Warn("Serving no admin socket: `kubemail queue` will not reach this server", "err", err)
	case err != nil:
		return fmt.Errorf("starting the admin endpoint: %w", err)
	default:
		go adminSrv.Serve()
		defer adminSrv.Close()
	}
	// Logged-in IMAP sessions, so a reload can end those whose access it takes away.
	imapSessions := imap.NewSessions()
	applyConfig := func(cfg *config.Config) {
		putInForce(live, purges, cfg)
		imapSessions.Revoke(live.Load())
		ensureDKIMKeys(dkimKeys, cfg, log)
		client.SetRouting(routing(cfg))
		q.SetRetryPolicy(retryPolicy(cfg))
	}

	var draining atomic.Bool
	smtpOpts := smtp.Options{Draining: &draining, Hostname: opts.Hostname, Live: live, Store: st, Queue: q, Auth: authn, TLS: tlsConfig, Logger: log,
		Verifier: &msgauth.Verifier{Hostname: opts.Hostname, Resolver: resolver, Logger: log},
		SpoolDir: filepath.Join(opts.DataDir, "spool"), AutoReply: responder}
	imapSrv := imap.NewServer(imap.Options{Store: st, Live: live, Auth: authn, TLS: tlsConfig, Logger: log, Sessions: imapSessions})

	ls := listeners{maxConns: opts.MaxConns, maxPerIP: opts.MaxConnsPerIP}
	if ls.maxConns == 0 {
		ls.maxConns = defaultMaxConns
	}
	if ls.maxPerIP == 0 {
		ls.maxPerIP = defaultMaxConnsPerIP
	}
	defer ls.closeAll()
	// Plain-text listeners tell a refused client why (RFC 5321 3.8, RFC 9051 7.1.5); on TLS
	// listeners the client would only see garbage, so those just close.
	smtpBusy := "421 4.7.0 " + opts.Hostname + " Too many connections, try again later\r\n"
	imapBusy := "* BYE [UNAVAILABLE] Too many connections, try again later\r\n"
	mx, sub, subs := smtp.NewMX(smtpOpts), smtp.NewSubmission(smtpOpts), smtp.NewSubmission(smtpOpts)
	if err := ls.add("smtp", opts.SMTPAddr, nil, smtpBusy, mx.Serve); err != nil {
		return err
	}
	if err := ls.add("submission", opts.SubmissionAddr, nil, smtpBusy, sub.Serve); err != nil {
		return err
	}
	if err := ls.add("submissions", opts.SubmissionsAddr, tlsConfig, "", subs.Serve); err != nil {
		return err
	}
	if err := ls.add("imap", opts.IMAPAddr, nil, imapBusy, imapSrv.Serve); err != nil {
		return err
	}
	if err := ls.add("imaps", opts.IMAPSAddr, tlsConfig, "", imapSrv.Serve); err != nil {
		return err
	}
	health := &http.Server{Handler: healthHandler(metrics.Handler(metrics.NewRegistry(MetricCollectors(q, cert)...))), ReadHeaderTimeout: 5 * time.Second}
	if err := ls.add("health", opts.HealthAddr, nil, "", health.Serve); err != nil {
		return err
	}

	errc := make(chan error, len(ls.items))
	for _, l := range ls.items {
		if opts.OnListen != nil {
			opts.OnListen(l.name, l.ln.Addr())
		}
		go func() {
			log.Info("Serving", "protocol", l.name, "addr", l.ln.Addr().String())
			err := l.serve(l.ln)
			if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, gosmtp.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving %s on %s: %w", l.name, l.ln.Addr(), err)
			}
		}()
	}
	go watchManifests(ctx, opts, loaded, applyConfig, hasher, log)

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// Stop in parallel: no new SMTP transactions (421), the ones under way finish; the queue
	// starts no new attempt and lets those under way finish; all within Kubernetes' 30 s.
	log.Info("Shutting down")
	draining.Store(true)
	stopQueue()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, stop := range []func(context.Context) error{mx.Shutdown, sub.Shutdown, subs.Shutdown, health.Shutdown} {
		wg.Add(1)
		go func() { defer wg.Done(); stop(shutdownCtx) }()
	}
	imapSrv.Close()
	wg.Wait()
	return err
}

// putInForce makes cfg the config in force, then has the purger revive its mailboxes and purge
// what it lists: once cfg is in force, an address it purges is no mailbox any more (see purger
// for why this order leaves a purged address no Maildir).
func putInForce(live *config.Live, purges *purger, cfg *config.Config) {
	live.Store(config.NewDirectory(cfg))
	purges.apply(cfg)
}

// MetricCollectors are the collectors the health listener's /metrics serves besides the
// metrics package's counters: the queue's gauges, MTA-STS results and the TLS certificate's
// expiry. Their Describe looks at neither q nor cert, so metrics.Names(MetricCollectors(nil,
// nil)...) lists every kubemail metric without a server.
func MetricCollectors(q *queue.Queue, cert *tlsutil.Certificate) []prometheus.Collector {
	return []prometheus.Collector{q.Collector(), delivery.MTASTSResults, metrics.TLSCertificateExpiry(cert.NotAfter)}
}

func loadTLS(opts Options, log *slog.Logger) (*tlsutil.Certificate, error) {
	certFile, keyFile := opts.TLSCert, opts.TLSKey
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if certFile == "" {
		var err error
		certFile, keyFile, err = tlsutil.SelfSigned(filepath.Join(opts.DataDir, "tls"), opts.Hostname)
		if err != nil {
			return nil, fmt.Errorf("making a self-signed certificate: %w", err)
		}
		log.Warn("Using a self-signed TLS certificate; give --tls-cert and --tls-key for one that clients trust", "cert", certFile)
	}
	return tlsutil.Load(certFile, keyFile)
}

type listener struct {
	name  string
	ln    net.Listener
	serve func(net.Listener) error
}

type listeners struct {
	maxConns, maxPerIP int
	items              []listener
}

// add listens on addr (nothing when addr is empty) with the connection limits, under TLS when
// tlsConfig is set; busyReply is what a client past the limits is told before the close.
func (ls *listeners) add(name, addr string, tlsConfig *tls.Config, busyReply string, serve func(net.Listener) error) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for %s: %w", name, err)
	}
	ln = newLimitListener(ln, ls.maxConns, ls.maxPerIP, busyReply)
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	ls.items = append(ls.items, listener{name: name, ln: ln, serve: serve})
	return nil
}

func (ls *listeners) closeAll() {
	for _, l := range ls.items {
		l.ln.Close()
	}
}

func healthHandler(metricsHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler)
	ok := func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", ok)
	return mux
}

// ensureDKIMKeys makes the DKIM keys of domains that have none and logs the DNS record each
// domain must publish.
func ensureDKIMKeys(keys *msgauth.Keys, cfg *config.Config, log *slog.Logger) {
	for _, d := range cfg.Domains {
		name, value, err := keys.DNSRecord(d.Name)
		if err != nil {
			log.Error("Failed preparing the DKIM key", "domain", d.Name, "err", err)
			continue
		}
		log.Info("DKIM key ready", "domain", d.Name, "record", name, "txt", value)
	}
}
