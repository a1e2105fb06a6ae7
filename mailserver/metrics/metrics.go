// Package metrics holds the mail server's Prometheus metrics, served on the health listener at
// /metrics (Handler).
//
// # Design
//
// The counters are package variables, so any package of the server (smtp, imap, queue) counts
// with one call and no plumbing. They are registered in no global registry: NewRegistry makes a
// dedicated registry per server holding them, the Go and process collectors, and the collectors
// of that server's own objects (the queue's gauges, computed at scrape time). Tests build their
// own registry, or read a counter directly with client_golang's testutil.ToFloat64; counters
// are process-wide, so a test compares a value before and after what it does.
//
// Label values come from small fixed sets (server role, result, SMTP reply code), never from
// addresses or client input, so the number of series is bounded.
//
// # Metrics
//
//	kubemail_smtp_messages_accepted_total{server,destination}  250 after DATA; destination
//	                                                            "local" (mailboxes) or "queue"
//	kubemail_smtp_rejections_total{server,stage,code,status}   refused commands: stage "sender"
//	                                                            (MAIL), "recipient" (RCPT) or
//	                                                            "message" (DATA); the reply's
//	                                                            code and enhanced status
//	kubemail_smtp_auth_total{server,result}                    AUTH on submission: ok, failed
//	                                                            (bad credentials), error
//	kubemail_imap_logins_total{result}                         IMAP LOGIN/AUTHENTICATE: same
//	kubemail_mailbox_quota_refusals_total{server,command}      mail refused for a full mailbox:
//	                                                            server mx, submission or imap;
//	                                                            command RCPT, DATA (BDAT too),
//	                                                            APPEND or COPY
//	kubemail_sessions_revoked_total{server,reason}             logged-in sessions ended because
//	                                                            a reload took their access away:
//	                                                            server imap or submission; reason
//	                                                            removed (the mailbox left the
//	                                                            config) or credentials (its
//	                                                            password hash changed)
//	kubemail_smtp_messages_junked_total{server,reason}         messages the MX delivered into
//	                                                            the recipients' Junk folder:
//	                                                            reason dmarc (a DMARC
//	                                                            p=quarantine failure) or dnsbl
//	                                                            (a list with action Junk)
//	kubemail_dnsbl_lookups_total{zone,result}                  DNSBL lookups of client
//	                                                            addresses (one per connection
//	                                                            and list): result listed (a
//	                                                            hit), not_listed, refused (the
//	                                                            list answered an error code) or
//	                                                            error (DNS failure, mail let
//	                                                            through); zone is a configured
//	                                                            list, so the set is bounded
//	kubemail_autoreplies_total{result}                         out-of-office replies (package
//	                                                            autoreply): sent, failed (could
//	                                                            not be queued) or
//	                                                            suppressed_<reason> (the
//	                                                            package's fixed set)
//	kubemail_queue_enqueued_total                              messages put in the queue
//	kubemail_queue_delivery_attempts_total{result}             one per recipient per attempt:
//	                                                            delivered, deferred (4xx,
//	                                                            network), failed (5xx)
//	kubemail_queue_expired_total                               recipients failed at the end of
//	                                                            the queue lifetime (5.4.7)
//	kubemail_queue_notices_total{type}                         notices sent to senders: bounce
//	                                                            (Action: failed) or delay
//	kubemail_delivery_connections_total{tls}                   outbound SMTP sessions opened,
//	                                                            tls "true" or "false" (plain)
//	kubemail_queue_messages                                    messages in the queue now
//	kubemail_queue_messages_in_flight                          of those, being delivered now
//	kubemail_queue_recipients_pending                          recipients still to be delivered
//	kubemail_queue_oldest_message_age_seconds                  age of the oldest; 0 when empty
//	kubemail_tls_certificate_expiry_timestamp_seconds          NotAfter (Unix time) of the
//	                                                            server's TLS certificate in force,
//	                                                            read at each scrape (the
//	                                                            server's own collector,
//	                                                            TLSCertificateExpiry)
//
// Names lists every metric a registry can expose, counted or not yet: the chart's test checks
// the alert rules (charts/kubemail/templates/prometheusrule.yaml) against it.
package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubemail/kubemail/mailserver/config"
)

const namespace = "kubemail"

// SMTP counters; the smtp package counts through SMTPAccepted and SMTPRejected.
var (
	SMTPMessagesAccepted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "smtp", Name: "messages_accepted_total",
		Help: "Messages accepted with 250 after DATA/BDAT, by server role and destination (local mailboxes or the outbound queue).",
	}, []string{"server", "destination"})
	SMTPRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "smtp", Name: "rejections_total",
		Help: "SMTP commands refused, by server role, stage (sender, recipient, message) and reply code and enhanced status.",
	}, []string{"server", "stage", "code", "status"})
	SMTPAuth = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "smtp", Name: "auth_total",
		Help: "SMTP AUTH attempts on submission, by result (ok, failed, error).",
	}, []string{"server", "result"})
)

// IMAPLogins counts IMAP logins by result: ok, failed (bad credentials), error (could not check).
var IMAPLogins = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: namespace, Subsystem: "imap", Name: "logins_total",
	Help: "IMAP LOGIN and AUTHENTICATE attempts, by result (ok, failed, error).",
}, []string{"result"})

// QuotaRefusals counts mail refused because it would take a mailbox past its quota (SMTP 452
// 4.2.2 or 552 5.2.3, IMAP NO [OVERQUOTA]), by server (mx, submission, imap) and command (RCPT,
// DATA, APPEND, COPY).
var QuotaRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: namespace, Subsystem: "mailbox", Name: "quota_refusals_total",
	Help: "Mail refused because a mailbox is full (SMTP 452 4.2.2 or 552 5.2.3, IMAP NO [OVERQUOTA]), by server and command.",
}, []string{"server", "command"})

// SessionsRevoked counts logged-in sessions ended because the config put in force took their
// access away (IMAP BYE, submission 421 4.7.0), by server (imap, submission) and reason
// (RevokedRemoved, RevokedCredentials).
var SessionsRevoked = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: namespace, Name: "sessions_revoked_total",
	Help: "Logged-in sessions ended because a reload removed their mailbox or changed its password, by server (imap, submission) and reason (removed, credentials).",
}, []string{"server", "reason"})

// Inbound spam defense on the MX (the smtp package counts, see its package doc).
var (
	SMTPJunked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "smtp", Name: "messages_junked_total",
		Help: "Messages delivered into the recipients' Junk folder instead of INBOX, by server and reason (dmarc: a DMARC p=quarantine failure; dnsbl: a DNS blocklist with action Junk).",
	}, []string{"server", "reason"})
	DNSBLLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "dnsbl", Name: "lookups_total",
		Help: "DNS blocklist lookups of client addresses, by list zone and result (listed, not_listed, refused: an error code answer, error: DNS failure).",
	}, []string{"zone", "result"})
)

// AutoReplies counts out-of-office replies by result: AutoReplySent, AutoReplyFailed, or
// "suppressed_" and a reason of package autoreply.
var AutoReplies = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: namespace, Name: "autoreplies_total",
	Help: "Out-of-office replies by result: sent, failed (could not be queued), or suppressed_<reason> (not sent: list or bulk mail, automatic mail, null or system sender, not addressed in To/Cc, already answered within the interval, outside the window).",
}, []string{"result"})

// Results of AutoReplies besides the suppressed ones.
const (
	AutoReplySent   = "sent"
	AutoReplyFailed = "failed"
)

// Label values of the spam defense counters.
const (
	JunkDMARC      = "dmarc"
	JunkDNSBL      = "dnsbl"
	DNSBLListed    = "listed"
	DNSBLNotListed = "not_listed"
	DNSBLRefused   = "refused"
	DNSBLError     = "error"
)

// Outbound queue counters; the queue's gauges come from its own collector (QueueCollector).
var (
	QueueEnqueued = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "queue", Name: "enqueued_total",
		Help: "Messages put in the outbound queue (notices to remote senders included).",
	})
	DeliveryAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "queue", Name: "delivery_attempts_total",
		Help: "Delivery attempts per recipient, by result: delivered, deferred (temporary failure, retried) or failed (permanent).",
	}, []string{"result"})
	QueueExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "queue", Name: "expired_total",
		Help: "Recipients that failed because the queue lifetime ended (5.4.7).",
	})
	Notices = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "queue", Name: "notices_total",
		Help: "Delivery status notices sent to senders, by type: bounce (failed) or delay.",
	}, []string{"type"})
	DeliveryConnections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "delivery", Name: "connections_total",
		Help: "Outbound SMTP sessions opened (through EHLO and AUTH), by whether they run over TLS.",
	}, []string{"tls"})
)

// Label values.
const (
	ResultOK        = "ok"
	ResultFailed    = "failed"
	ResultError     = "error"
	ResultDelivered = "delivered"
	ResultDeferred  = "deferred"
	NoticeBounce    = "bounce"
	NoticeDelay     = "delay"
	// Why a session was revoked: its mailbox left the config, or its password hash changed.
	RevokedRemoved     = config.RevokedRemoved
	RevokedCredentials = config.RevokedCredentials
)

var all = []prometheus.Collector{SMTPMessagesAccepted, SMTPRejections, SMTPAuth, IMAPLogins,
	QueueEnqueued, DeliveryAttempts, QueueExpired, Notices, DeliveryConnections, QuotaRefusals, SessionsRevoked,
	SMTPJunked, DNSBLLookups, AutoReplies}

func init() {
	// Series with known labels exist from the start at 0, so rate() and alerts see them.
	for _, server := range []string{"mx", "submission"} {
		for _, dest := range []string{"local", "queue"} {
			SMTPMessagesAccepted.WithLabelValues(server, dest)
		}
	}
	for _, r := range []string{ResultOK, ResultFailed, ResultError} {
		SMTPAuth.WithLabelValues("submission", r)
		IMAPLogins.WithLabelValues(r)
	}
	for _, r := range []string{ResultDelivered, ResultDeferred, ResultFailed} {
		DeliveryAttempts.WithLabelValues(r)
	}
	for _, server := range []string{"mx", "submission"} {
		for _, cmd := range []string{"RCPT", "DATA"} {
			QuotaRefusals.WithLabelValues(server, cmd)
		}
	}
	for _, cmd := range []string{"APPEND", "COPY"} {
		QuotaRefusals.WithLabelValues("imap", cmd)
	}
	for _, server := range []string{"imap", "submission"} {
		for _, reason := range []string{RevokedRemoved, RevokedCredentials} {
			SessionsRevoked.WithLabelValues(server, reason)
		}
	}
	for _, reason := range []string{JunkDMARC, JunkDNSBL} {
		SMTPJunked.WithLabelValues("mx", reason)
	}
	DeliveryConnections.WithLabelValues("true")
	DeliveryConnections.WithLabelValues("false")
	Notices.WithLabelValues(NoticeBounce)
	Notices.WithLabelValues(NoticeDelay)
	AutoReplies.WithLabelValues(AutoReplySent)
	AutoReplies.WithLabelValues(AutoReplyFailed)
}

// NewRegistry returns a registry of its own (never prometheus.DefaultRegisterer) with every
// counter of this package, the Go runtime and process collectors, and extra: the collectors of
// one server's objects, such as (*queue.Queue).Collector().
func NewRegistry(extra ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(all...)
	reg.MustRegister(extra...)
	return reg
}

// TLSCertificateExpiry returns the collector of
// kubemail_tls_certificate_expiry_timestamp_seconds: notAfter() at each scrape, the end of
// validity of the certificate the server serves now (tlsutil's (*Certificate).NotAfter).
func TLSCertificateExpiry(notAfter func() time.Time) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "tls", Name: "certificate_expiry_timestamp_seconds",
		Help: "NotAfter (Unix time) of the leaf TLS certificate the server serves now; it changes when the certificate files are renewed.",
	}, func() float64 { return float64(notAfter().Unix()) })
}

var descName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)

// Names returns the sorted names of every metric of this package and extra, so every kubemail
// metric NewRegistry(extra...) can expose (the Go and process collectors' are left out), whether
// or not a series of it has been counted yet: a registry's Gather leaves out label sets never
// used. Histograms and summaries appear under their base name.
func Names(extra ...prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		for _, c := range append(slices.Clone(all), extra...) {
			c.Describe(ch)
		}
		close(ch)
	}()
	var names []string
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Handler serves reg in the Prometheus text format (for GET /metrics).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})
}

// SMTPAccepted counts one message accepted by server ("mx" or "submission"); queued says it
// went into the outbound queue rather than straight into mailboxes.
func SMTPAccepted(server string, queued bool) {
	dest := "local"
	if queued {
		dest = "queue"
	}
	SMTPMessagesAccepted.WithLabelValues(server, dest).Inc()
}

// SMTPRejected counts one refused command on server. stage is "sender", "recipient" or
// "message"; the smtp package's log messages "Rejected sender" etc. are taken as they are. The
// code and status labels come from err when it is a *gosmtp.SMTPError, else they are empty.
func SMTPRejected(server, stage string, err error) {
	stage = strings.ToLower(strings.TrimPrefix(stage, "Rejected "))
	code, status := "", ""
	var serr *gosmtp.SMTPError
	if errors.As(err, &serr) {
		code = fmt.Sprint(serr.Code)
		if serr.EnhancedCode != gosmtp.EnhancedCodeNotSet && serr.EnhancedCode != gosmtp.NoEnhancedCode {
			status = fmt.Sprintf("%d.%d.%d", serr.EnhancedCode[0], serr.EnhancedCode[1], serr.EnhancedCode[2])
		}
	}
	SMTPRejections.WithLabelValues(server, stage, code, status).Inc()
}
