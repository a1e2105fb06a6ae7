package msgauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
	"github.com/kubemail/kubemail/mailserver/msgauth"
	"github.com/kubemail/kubemail/mailserver/smtp"
)

// sharedKeyFile is one RSA-2048 key made once for the whole run (making one takes a while);
// each test copies it into its own key directory.
var (
	sharedKeyOnce sync.Once
	sharedKey     []byte
)

func keysFor(t *testing.T, domain string) *msgauth.Keys {
	t.Helper()
	sharedKeyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "msgauth-key")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		k := msgauth.NewKeys(dir, msgauth.KeysOptions{})
		if _, err := k.Key("shared.test"); err != nil {
			t.Fatal(err)
		}
		sharedKey, _ = os.ReadFile(k.Path("shared.test"))
	})
	dir := filepath.Join(t.TempDir(), "dkim")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, domain+".key"), sharedKey, 0o600); err != nil {
		t.Fatal(err)
	}
	return msgauth.NewKeys(dir, msgauth.KeysOptions{})
}

// world is a.test (the sender's server: a delivery client that signs) and b.test (a kubemail
// MX on 127.0.0.2 that verifies), with a test DNS server answering for both and for others.
type world struct {
	dns    *dnstest.Server
	keys   *msgauth.Keys
	a, b   *deliverytest.Server
	client *delivery.Client
	signer *msgauth.Signer
}

func newWorld(t *testing.T, bDomains ...config.Domain) *world {
	t.Helper()
	return newWorldWith(t, nil, bDomains...)
}

// newWorldWith also gives B's config policies (trusted networks).
func newWorldWith(t *testing.T, policies []config.RelayPolicy, bDomains ...config.Domain) *world {
	t.Helper()
	w := &world{dns: dnstest.Start(t)}
	w.keys = keysFor(t, "a.test")
	name, value, err := w.keys.DNSRecord("a.test")
	if err != nil {
		t.Fatal(err)
	}
	w.dns.SetTXT(name, value)
	w.dns.SetTXT("a.test", "v=spf1 ip4:127.0.0.0/8 -all")
	w.dns.SetTXT("_dmarc.a.test", "v=DMARC1; p=reject")

	cfg := deliverytest.Mailboxes(t, "b.test", "bob")
	cfg.Domains = append(cfg.Domains, bDomains...)
	cfg.RelayPolicies = policies
	for _, d := range bDomains {
		cfg.Mailboxes = append(cfg.Mailboxes, config.Mailbox{Address: "bob@" + d.Name})
	}
	w.b = deliverytest.StartMXWith(t, "mx.b.test", "127.0.0.2", 0, cfg, func(o *smtp.Options) {
		o.Verifier = &msgauth.Verifier{Hostname: "mx.b.test", Resolver: delivery.NewResolver(w.dns.Addr), Timeout: 5 * time.Second}
		o.SpoolDir = t.TempDir()
	})
	w.dns.SetMX("b.test", &net.MX{Host: "mx.b.test", Pref: 10})
	w.dns.SetA("mx.b.test", "127.0.0.2")

	// A's own mailboxes: the store of a (non-listening) kubemail MX for a.test.
	w.a = deliverytest.StartMX(t, "mx.a.test", "127.0.0.1", 0, deliverytest.Mailboxes(t, "a.test", "alice"))
	aLive := w.a.Live
	w.signer = &msgauth.Signer{Keys: w.keys, Live: aLive}
	w.client = delivery.New(delivery.Options{
		Hostname: "mx.a.test", Live: aLive, Local: w.a.Store, Resolver: delivery.NewResolver(w.dns.Addr), MXPort: w.b.Port(),
		DKIM:     w.signer,
		Timeouts: delivery.Timeouts{Connect: 2 * time.Second, Command: 5 * time.Second, DataInit: 5 * time.Second, Block: 5 * time.Second, DataEnd: 5 * time.Second},
	})
	t.Cleanup(w.client.Close)
	return w
}

func message(from, to, subject, body string) string {
	return "From: Alice <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + subject +
		"\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + subject + "@a.test>\r\n\r\n" + body
}

// send delivers msg from A's queue through the signing delivery client.
func (w *world) send(t *testing.T, envFrom, rcpt, msg string) delivery.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res := w.client.Deliver(ctx, &delivery.Message{ID: "T1", From: envFrom, Rcpts: []string{rcpt}, Size: int64(len(msg)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(msg)), nil }})
	return res[0]
}

// sendRaw sends msg straight to B's MX from 127.0.0.1 as a foreign server would, and returns
// the reply to the end of data (nil for 250).
func (w *world) sendRaw(t *testing.T, helo, envFrom, rcpt, msg string) error {
	t.Helper()
	c, err := gosmtp.Dial(w.b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(envFrom, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		t.Fatal(err)
	}
	wc, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(wc, msg); err != nil {
		t.Fatal(err)
	}
	return wc.Close()
}

// waitSubject polls until address has the message with this subject, and returns it (Maildir
// file names do not sort by arrival within a second).
func waitSubject(t *testing.T, s *deliverytest.Server, address, subject string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		for _, m := range s.Inbox(address) {
			if strings.Contains(m, "\r\nSubject: "+subject+"\r\n") {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no message %q after 30s", address, subject)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// authResults is the Authentication-Results field of a stored message, unfolded.
func authResults(t *testing.T, stored string) string {
	t.Helper()
	const name = "Authentication-Results: "
	if !strings.HasPrefix(stored, name) {
		t.Fatalf("stored message does not start with Authentication-Results:\n%.600s", stored)
	}
	end := strings.Index(stored, "\r\nReceived: ")
	return strings.Join(strings.Fields(strings.ReplaceAll(stored[len(name):end], "\r\n", "")), " ")
}

func wantContains(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("Authentication-Results %q lacks %q", got, w)
		}
	}
}

func wantRefused(t *testing.T, err error) {
	t.Helper()
	var serr *gosmtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != 550 || serr.EnhancedCode != (gosmtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("reply = %v, want 550 5.7.1", err)
	}
}

// Mail signed at A passes SPF, DKIM and DMARC at B, and the stored copy's signature verifies.
func TestSignedMailPassesAtAnotherServer(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct{ name, body string }{
		{"small", "Hello Bob.\r\n"},
		// Past the 1 MiB held in memory: the rest of the message is spooled to a file.
		{"large", strings.Repeat("A line of a long message, to go past one mebibyte.\r\n", 30000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := w.send(t, "alice@a.test", "bob@b.test", message("alice@a.test", "bob@b.test", tc.name, tc.body)); !r.Delivered() {
				t.Fatalf("delivery: %v", r)
			}
			stored := waitSubject(t, w.b, "bob@b.test", tc.name)
			wantContains(t, authResults(t, stored), "mx.b.test;", "spf=pass smtp.mailfrom=alice@a.test",
				"dkim=pass header.d=a.test", "dmarc=pass", "header.from=a.test")
			if !strings.HasSuffix(stored, tc.body) {
				t.Error("stored body differs from the one sent")
			}
			// Verify the stored copy independently: our trace fields are above the signature.
			verifs, err := dkim.VerifyWithOptions(strings.NewReader(stored), &dkim.VerifyOptions{
				LookupTXT: func(name string) ([]string, error) {
					return delivery.NewResolver(w.dns.Addr).LookupTXT(context.Background(), name)
				}})
			if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "a.test" {
				t.Fatalf("DKIM verification of the stored copy: %v %+v", err, verifs)
			}
			if want := []string{"From", "From", "To", "Subject", "Date", "Message-ID"}; strings.Join(verifs[0].HeaderKeys, ":") != strings.Join(want, ":") {
				t.Errorf("signed fields %v, want %v (present ones, From oversigned)", verifs[0].HeaderKeys, want)
			}
		})
	}
}

// One message to a local and a remote recipient: only the copy sent over SMTP is signed.
func TestOnlyMailSentOverSMTPIsSigned(t *testing.T) {
	w := newWorld(t)
	msg := message("alice@a.test", "bob@b.test", "both", "Hi both.\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res := w.client.Deliver(ctx, &delivery.Message{ID: "T2", From: "alice@a.test", Rcpts: []string{"alice@a.test", "bob@b.test"},
		Size: int64(len(msg)), Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(msg)), nil }})
	for _, r := range res {
		if !r.Delivered() {
			t.Fatalf("%s: %v", r.Rcpt, r)
		}
	}
	if local := w.a.WaitInbox("alice@a.test", 1, 30*time.Second)[0]; local != msg {
		t.Errorf("the local copy is not the message as queued:\n%s", local)
	}
	remote := w.b.WaitInbox("bob@b.test", 1, 30*time.Second)[0]
	if !strings.Contains(remote, "\r\nDKIM-Signature: a=rsa-sha256; ") || !strings.Contains(remote, " c=relaxed/relaxed; d=a.test;") ||
		!strings.HasSuffix(remote, msg) {
		t.Errorf("the remote copy is not signed, or changed:\n%s", remote)
	}
	wantContains(t, authResults(t, remote), "dkim=pass header.d=a.test", "dmarc=pass")
}

// A forged From: of a p=reject domain is refused with 550 5.7.1, whether the envelope sender
// is another domain or the forged one (then SPF fails too); a subdomain falls back to the
// organizational domain's record.
func TestForgedFromOfRejectDomainIsRefused(t *testing.T) {
	w := newWorld(t)
	w.dns.SetTXT("bank.test", "v=spf1 ip4:192.0.2.1 -all")
	w.dns.SetTXT("_dmarc.bank.test", "v=DMARC1; p=reject")
	w.dns.SetTXT("evil.test", "v=spf1 ip4:127.0.0.0/8 -all")
	for _, tc := range []struct{ envFrom, from string }{
		{"mallory@evil.test", "ceo@bank.test"},
		{"ceo@bank.test", "ceo@bank.test"},
		{"", "ceo@bank.test"},
		{"mallory@evil.test", "ceo@payments.bank.test"},
	} {
		err := w.sendRaw(t, "mail.evil.test", tc.envFrom, "bob@b.test", message(tc.from, "bob@b.test", "pay", "Pay now.\r\n"))
		wantRefused(t, err)
	}
	// An extra From: line does not hide a forged one.
	msg := "From: <mallory@evil.test>\r\n" + message("ceo@bank.test", "bob@b.test", "pay", "Pay now.\r\n")
	wantRefused(t, w.sendRaw(t, "mail.evil.test", "mallory@evil.test", "bob@b.test", msg))
	if n := len(w.b.Inbox("bob@b.test")); n != 0 {
		t.Fatalf("bob has %d messages, want none", n)
	}
	if logs := w.b.Logs(); !strings.Contains(logs, "DMARC policy reject of bank.test") {
		t.Errorf("no rejection logged:\n%s", logs)
	}
}

// p=none failures are accepted and marked dmarc=fail; so is a p=reject failure for a domain
// that turned enforcement off.
func TestDMARCFailureAcceptedUnlessEnforcedReject(t *testing.T) {
	w := newWorld(t, config.Domain{Name: "lenient.test", MaxMessageSize: config.DefaultMaxMessageSize, MaxRecipients: 100, IgnoreDMARCReject: true})
	w.dns.SetTXT("lax.test", "v=spf1 ip4:192.0.2.1 -all")
	w.dns.SetTXT("_dmarc.lax.test", "v=DMARC1; p=none")
	w.dns.SetTXT("_dmarc.bank.test", "v=DMARC1; p=reject")
	if err := w.sendRaw(t, "mail.lax.test", "x@lax.test", "bob@b.test", message("ceo@lax.test", "bob@b.test", "lax", "Hi.\r\n")); err != nil {
		t.Fatalf("p=none failure: %v", err)
	}
	got := authResults(t, w.b.WaitInbox("bob@b.test", 1, 30*time.Second)[0])
	wantContains(t, got, "spf=fail smtp.mailfrom=x@lax.test", "dkim=none", "dmarc=fail", "p=none", "header.from=lax.test")

	// A subdomain's failure under sp=none is recorded only. (p=quarantine goes into Junk:
	// junk_test.go.)
	w.dns.SetTXT("_dmarc.corp.test", "v=DMARC1; p=reject; sp=none")
	for i, from := range []string{"x@news.corp.test"} {
		subject := fmt.Sprint("q", i)
		if err := w.sendRaw(t, "mail.lax.test", "x@lax.test", "bob@b.test", message(from, "bob@b.test", subject, "Hi.\r\n")); err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		got := authResults(t, waitSubject(t, w.b, "bob@b.test", subject))
		wantContains(t, got, "dmarc=fail", []string{"p=none"}[i], "header.from="+from[2:])
	}

	if err := w.sendRaw(t, "mail.evil.test", "m@evil.test", "bob@lenient.test", message("ceo@bank.test", "bob@lenient.test", "r", "Hi.\r\n")); err != nil {
		t.Fatalf("p=reject failure to a domain that ignores it: %v", err)
	}
	got = authResults(t, w.b.WaitInbox("bob@lenient.test", 1, 30*time.Second)[0])
	wantContains(t, got, "dmarc=fail", "p=reject", "header.from=bank.test")
}

// A DNS failure gives temperror, and the message is accepted even from a p=reject domain.
func TestDNSFailureGivesTemperror(t *testing.T) {
	w := newWorld(t)
	w.dns.SetServfail("down.test", true)
	w.dns.SetServfail("_dmarc.down.test", true)
	if err := w.sendRaw(t, "mail.down.test", "x@down.test", "bob@b.test", message("x@down.test", "bob@b.test", "d1", "Hi.\r\n")); err != nil {
		t.Fatalf("reply: %v", err)
	}
	got := authResults(t, w.b.WaitInbox("bob@b.test", 1, 30*time.Second)[0])
	wantContains(t, got, "spf=temperror", "dmarc=temperror", "header.from=down.test")

	// From: a p=reject domain whose DKIM key lookup fails, SPF not aligned: no verdict, accepted.
	w.dns.SetServfail("kubemail._domainkey.a.test", true)
	if err := w.sendRaw(t, "mail.down.test", "x@down.test", "bob@b.test", w.signed(t, message("alice@a.test", "bob@b.test", "d2", "Hi.\r\n"))); err != nil {
		t.Fatalf("reply: %v", err)
	}
	got = authResults(t, waitSubject(t, w.b, "bob@b.test", "d2"))
	wantContains(t, got, "spf=temperror", "dkim=temperror", "header.d=a.test", "dmarc=temperror", "header.from=a.test")
}

// signed is msg with A's DKIM signature in front.
func (w *world) signed(t *testing.T, msg string) string {
	t.Helper()
	sig, err := w.signer.Sign(context.Background(), strings.NewReader(msg))
	if err != nil || len(sig) == 0 {
		t.Fatalf("signing: %q, %v", sig, err)
	}
	return string(sig) + msg
}

// Authentication-Results fields claiming our authserv-id are removed from arriving mail; other
// servers' are kept, below ours.
func TestForgedOwnResultsRemoved(t *testing.T) {
	w := newWorld(t)
	w.dns.SetTXT("lax.test", "v=spf1 ip4:127.0.0.0/8 -all")
	msg := "Authentication-Results: MX.B.TEST;\r\n\tdkim=pass header.d=bank.test\r\n" +
		"Authentication-Results: relay.lax.test; spf=pass smtp.mailfrom=x@lax.test\r\n" +
		"Authentication-Results: mx.b.test; dmarc=pass header.from=bank.test\r\n" +
		message("x@lax.test", "bob@b.test", "forged", "Hi.\r\n")
	if err := w.sendRaw(t, "mail.lax.test", "x@lax.test", "bob@b.test", msg); err != nil {
		t.Fatal(err)
	}
	stored := w.b.WaitInbox("bob@b.test", 1, 30*time.Second)[0]
	wantContains(t, authResults(t, stored), "mx.b.test;", "spf=pass", "dmarc=none")
	if n := strings.Count(stored, "Authentication-Results: "); n != 2 {
		t.Errorf("%d Authentication-Results fields, want ours and relay.lax.test's:\n%s", n, stored)
	}
	if strings.Contains(stored, "bank.test") || !strings.Contains(stored, "Authentication-Results: relay.lax.test; spf=pass") {
		t.Errorf("forged fields kept or foreign field lost:\n%s", stored)
	}
}

// Clients in a trusted network are our own applications: their mail is not checked, gets no
// Authentication-Results, and a p=reject From: is not refused.
func TestTrustedNetworkNotChecked(t *testing.T) {
	w := newWorldWith(t, []config.RelayPolicy{{Name: "apps", TrustedNetworks: []string{"127.0.0.0/8"}}})
	w.dns.SetTXT("_dmarc.bank.test", "v=DMARC1; p=reject")
	if err := w.sendRaw(t, "app.cluster.local", "app@bank.test", "bob@b.test", message("ceo@bank.test", "bob@b.test", "app", "Hi.\r\n")); err != nil {
		t.Fatalf("trusted client: %v", err)
	}
	stored := w.b.WaitInbox("bob@b.test", 1, 30*time.Second)[0]
	if strings.Contains(stored, "Authentication-Results") || !strings.HasPrefix(stored, "Received: ") {
		t.Errorf("trusted client's message was checked:\n%s", stored)
	}
}
