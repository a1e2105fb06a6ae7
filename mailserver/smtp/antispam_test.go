package smtp_test

import (
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/msgauth"
	"github.com/kubemail/kubemail/mailserver/smtp"
	"github.com/kubemail/kubemail/mailserver/store/storetest"
)

// antispamWorld is a kubemail MX on 127.0.0.1 that checks its clients (msgauth.Verifier) against
// a test DNS server, for these domains, each with the mailbox bob@:
//
//	listed.test   DNSBL bl.test, Reject
//	junk.test     DNSBL bl.test, Junk
//	codes.test    DNSBL bl.test, Reject, return codes 127.0.0.4/30 only
//	fragile.test  DNSBL dead.test (SERVFAIL), Reject
//	plain.test    no DNSBL
//
// bl.test lists 127.0.0.2 (with a TXT reason) and answers 127.255.255.254 (an error code) for
// 127.0.0.3. Clients connect from any 127/8 address.
type antispamWorld struct {
	dns *dnstest.Server
	mx  *deliverytest.Server
}

func newAntispamWorld(t *testing.T, policies ...config.RelayPolicy) *antispamWorld {
	t.Helper()
	w := &antispamWorld{dns: dnstest.Start(t)}
	w.dns.AddAddr("2.0.0.127.bl.test", "127.0.0.2")
	w.dns.AddTXT("2.0.0.127.bl.test", "Listed: see https://bl.test/q/127.0.0.2")
	w.dns.AddAddr("3.0.0.127.bl.test", "127.255.255.254")
	w.dns.SetServfail("2.0.0.127.dead.test", true)
	list := func(zone, action string, codes ...string) *config.Antispam {
		l := config.DNSBL{Zone: zone, Action: action}
		for _, c := range codes {
			l.ReturnCodes = append(l.ReturnCodes, netip.MustParsePrefix(c))
		}
		return &config.Antispam{DNSBLs: []config.DNSBL{l}}
	}
	cfg := &config.Config{RelayPolicies: policies}
	for _, d := range []config.Domain{
		{Name: "listed.test", Antispam: list("bl.test", config.DNSBLReject)},
		{Name: "junk.test", Antispam: list("bl.test", config.DNSBLJunk)},
		{Name: "codes.test", Antispam: list("bl.test", config.DNSBLReject, "127.0.0.4/30")},
		{Name: "fragile.test", Antispam: list("dead.test", config.DNSBLReject)},
		{Name: "plain.test"},
	} {
		d.MaxMessageSize, d.MaxRecipients = config.DefaultMaxMessageSize, config.DefaultMaxRecipients
		cfg.Domains = append(cfg.Domains, d)
		cfg.Mailboxes = append(cfg.Mailboxes, config.Mailbox{Address: "bob@" + d.Name})
	}
	w.mx = deliverytest.StartMXWith(t, "mx.b.test", "127.0.0.1", 0, cfg, func(o *smtp.Options) {
		o.Verifier = &msgauth.Verifier{Hostname: "mx.b.test", Resolver: delivery.NewResolver(w.dns.Addr), Timeout: 5 * time.Second}
		o.SpoolDir = t.TempDir()
	})
	return w
}

// dial connects to the MX from the loopback address src, as a server at src would, and greets.
func (w *antispamWorld) dial(t *testing.T, src string) *gosmtp.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", w.mx.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// send sends one message in a transaction already opened with MAIL and RCPT; nil is 250.
func send(t *testing.T, c *gosmtp.Client, msg string) error {
	t.Helper()
	wc, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := wc.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	return wc.Close()
}

// sendFrom sends msg from the client address src to rcpts, failing the test on any refusal.
func (w *antispamWorld) sendFrom(t *testing.T, src, from string, rcpts []string, msg string) {
	t.Helper()
	c := w.dial(t, src)
	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatalf("RCPT %s from %s: %v", r, src, err)
		}
	}
	if err := send(t, c, msg); err != nil {
		t.Fatalf("message from %s: %v", src, err)
	}
	c.Quit()
}

func testMessage(from, subject string) string {
	return "From: <" + from + ">\r\nTo: <bob@plain.test>\r\nSubject: " + subject +
		"\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + subject + "@client.test>\r\n\r\nHello\r\n"
}

// junk and inbox read bob@domain's Junk and INBOX from the Maildir (by unique name, so a move
// from new/ to cur/ under way does not matter).
func (w *antispamWorld) junk(t *testing.T, domain string) []storetest.Message {
	return storetest.Inbox(t, filepath.Join(w.mx.DataDir, "mail", domain, "bob", ".Junk"))
}

func (w *antispamWorld) inbox(t *testing.T, domain string) []storetest.Message {
	return storetest.Inbox(t, filepath.Join(w.mx.DataDir, "mail", domain, "bob"))
}

func wantSubjects(t *testing.T, where string, msgs []storetest.Message, subjects ...string) {
	t.Helper()
	var got []string
	for _, m := range msgs {
		_, rest, _ := strings.Cut(m.Data, "\r\nSubject: ")
		s, _, _ := strings.Cut(rest, "\r\n")
		got = append(got, s)
	}
	// In any order: Maildir names do not sort by arrival within a second.
	slices.Sort(got)
	slices.Sort(subjects)
	if strings.Join(got, ",") != strings.Join(subjects, ",") {
		t.Errorf("%s has %q, want %q", where, got, subjects)
	}
}

func wantReply(t *testing.T, err error, code int, enhanced gosmtp.EnhancedCode, texts ...string) {
	t.Helper()
	var serr *gosmtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != code || serr.EnhancedCode != enhanced {
		t.Fatalf("reply %v, want %d %v", err, code, enhanced)
	}
	for _, s := range texts {
		if !strings.Contains(serr.Message, s) {
			t.Errorf("reply %q lacks %q", serr.Message, s)
		}
	}
}

func counter(zone, result string) float64 {
	return testutil.ToFloat64(metrics.DNSBLLookups.WithLabelValues(zone, result))
}

// A client a Reject list names gets 554 5.7.1 at RCPT for that domain's recipients, naming the
// list with its TXT reason, even for addresses that do not exist; the transaction goes on for a
// domain without the list; the list is asked once per connection. A client it does not name
// is served.
func TestDNSBLRejectsListedClientAtRCPT(t *testing.T) {
	w := newAntispamWorld(t)
	listedBefore, cleanBefore := counter("bl.test", metrics.DNSBLListed), counter("bl.test", metrics.DNSBLNotListed)
	c := w.dial(t, "127.0.0.2")
	if err := c.Mail("x@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{"bob@listed.test", "nobody@listed.test"} {
		wantReply(t, c.Rcpt(rcpt, nil), 554, gosmtp.EnhancedCode{5, 7, 1},
			"Client host [127.0.0.2] blocked using bl.test; Listed: see https://bl.test/q/127.0.0.2")
	}
	if err := c.Rcpt("bob@plain.test", nil); err != nil {
		t.Fatalf("RCPT to a domain without lists: %v", err)
	}
	if err := send(t, c, testMessage("x@sender.test", "listed")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	wantSubjects(t, "bob@plain.test's INBOX", w.inbox(t, "plain.test"), "listed")
	wantSubjects(t, "bob@listed.test's INBOX", w.inbox(t, "listed.test"))
	if d := counter("bl.test", metrics.DNSBLListed) - listedBefore; d != 1 {
		t.Errorf("kubemail_dnsbl_lookups_total{zone=bl.test,result=listed} grew by %v over one connection, want 1", d)
	}

	w.sendFrom(t, "127.0.0.1", "x@sender.test", []string{"bob@listed.test"}, testMessage("x@sender.test", "clean"))
	wantSubjects(t, "bob@listed.test's INBOX", w.inbox(t, "listed.test"), "clean")
	if d := counter("bl.test", metrics.DNSBLNotListed) - cleanBefore; d != 1 {
		t.Errorf("not_listed grew by %v, want 1", d)
	}
	if logs := w.mx.Logs(); !strings.Contains(logs, "Found the client in a DNSBL") || !strings.Contains(logs, "reason=\"client listed by bl.test\"") {
		t.Errorf("the log lacks the listing and the rejection:\n%s", logs)
	}
}

// A Junk list's client is accepted and its message goes into the Junk folder of that domain's
// recipients, INBOX for the others of the same transaction; logged and counted.
func TestDNSBLJunkDeliversIntoJunk(t *testing.T) {
	w := newAntispamWorld(t)
	before := testutil.ToFloat64(metrics.SMTPJunked.WithLabelValues("mx", metrics.JunkDNSBL))
	w.sendFrom(t, "127.0.0.2", "x@sender.test", []string{"bob@junk.test", "bob@plain.test"}, testMessage("x@sender.test", "junked"))
	wantSubjects(t, "bob@junk.test's Junk", w.junk(t, "junk.test"), "junked")
	wantSubjects(t, "bob@junk.test's INBOX", w.inbox(t, "junk.test"))
	wantSubjects(t, "bob@plain.test's INBOX", w.inbox(t, "plain.test"), "junked")
	wantSubjects(t, "bob@plain.test's Junk", w.junk(t, "plain.test"))
	if d := testutil.ToFloat64(metrics.SMTPJunked.WithLabelValues("mx", metrics.JunkDNSBL)) - before; d != 1 {
		t.Errorf("kubemail_smtp_messages_junked_total{reason=dnsbl} grew by %v, want 1", d)
	}
	logs := w.mx.Logs()
	if !strings.Contains(logs, "folder=Junk") || !strings.Contains(logs, `junk_reason="dnsbl bl.test"`) || !strings.Contains(logs, "junked=[bob@junk.test]") {
		t.Errorf("the Accepted message line does not say where it went:\n%s", logs)
	}
}

// What never refuses mail: an error code answer (logged once as a warning), an answer outside
// the return codes asked for, a list whose lookup fails (SERVFAIL: fail open).
func TestDNSBLErrorCodesAndFailuresLetMailThrough(t *testing.T) {
	w := newAntispamWorld(t)
	errorsBefore := counter("dead.test", metrics.DNSBLError)
	for i := range 2 {
		w.sendFrom(t, "127.0.0.3", "x@sender.test", []string{"bob@listed.test"}, testMessage("x@sender.test", "refused-query"))
		if n := strings.Count(w.mx.Logs(), "A DNSBL refused our query"); n != 1 {
			t.Errorf("after %d connections the refusal is logged %d times, want once", i+1, n)
		}
	}
	w.sendFrom(t, "127.0.0.2", "x@sender.test", []string{"bob@codes.test"}, testMessage("x@sender.test", "other-code"))
	w.sendFrom(t, "127.0.0.2", "x@sender.test", []string{"bob@fragile.test"}, testMessage("x@sender.test", "servfail"))
	wantSubjects(t, "bob@listed.test's INBOX", w.inbox(t, "listed.test"), "refused-query", "refused-query")
	wantSubjects(t, "bob@codes.test's INBOX", w.inbox(t, "codes.test"), "other-code")
	wantSubjects(t, "bob@fragile.test's INBOX", w.inbox(t, "fragile.test"), "servfail")
	if d := counter("dead.test", metrics.DNSBLError) - errorsBefore; d != 1 {
		t.Errorf("error lookups of dead.test grew by %v, want 1", d)
	}
	if !strings.Contains(w.mx.Logs(), "Failed a DNSBL lookup") {
		t.Errorf("the failed lookup is not logged:\n%s", w.mx.Logs())
	}
}

// Clients in a RelayPolicy's trusted networks are neither looked up nor junked.
func TestDNSBLNotForTrustedClients(t *testing.T) {
	w := newAntispamWorld(t, config.RelayPolicy{Name: "in-cluster", TrustedNetworks: []string{"127.0.0.2/32"}})
	w.dns.AddTXT("_dmarc.q.test", "v=DMARC1; p=quarantine")
	w.sendFrom(t, "127.0.0.2", "x@q.test", []string{"bob@listed.test", "bob@junk.test"}, testMessage("x@q.test", "trusted"))
	wantSubjects(t, "bob@listed.test's INBOX", w.inbox(t, "listed.test"), "trusted")
	wantSubjects(t, "bob@junk.test's INBOX", w.inbox(t, "junk.test"), "trusted")
	if n := w.dns.Queries("A", "2.0.0.127.bl.test"); n != 0 {
		t.Errorf("a trusted client was looked up %d times", n)
	}
}
