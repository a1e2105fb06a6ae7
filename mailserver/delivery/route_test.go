package delivery_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
)

// relay is a kubemail submission server as the smarthost: relay.test on 127.0.0.7, serving
// b.test; it takes mail from bob@b.test once bob has authenticated over TLS.
func startRelay(t *testing.T, e *env) *deliverytest.Server {
	r := deliverytest.StartSubmission(t, "relay.test", "127.0.0.7", 0, deliverytest.Mailboxes(t, "b.test", "bob", "carol"))
	e.dns.SetA("relay.test", "127.0.0.7")
	return r
}

func smarthostClient(t *testing.T, e *env, sh delivery.Smarthost, roots *tls.Config) *delivery.Client {
	return e.client(t, func(o *delivery.Options) {
		o.RootCAs = roots
		o.Routing.Smarthosts = []delivery.SmarthostRule{{SenderDomains: []string{"b.test"}, Smarthost: sh}}
	})
}

func TestSmarthostWithRequiredSTARTTLSAndAUTH(t *testing.T) {
	e := newEnv(t)
	relay := startRelay(t, e)
	sh := delivery.Smarthost{Host: "relay.test", Port: relay.Port(), TLS: delivery.STARTTLS, Username: "bob@b.test", Password: "bob-password"}
	c := smarthostClient(t, e, sh, relay.ClientTLS)
	res := deliver(t, c, testMessage("via-relay", "bob@b.test", "carol@b.test"))
	wantStatus(t, res[0], "2.0.0")
	if res[0].RemoteMTA != "relay.test" {
		t.Errorf("delivered by %q, want relay.test", res[0].RemoteMTA)
	}
	msgs := relay.WaitInbox("carol@b.test", 1, 30*time.Second)
	// ESMTPSA: over TLS and authenticated (RFC 3848).
	if !strings.Contains(msgs[0], "with ESMTPSA") || !strings.Contains(msgs[0], "(Authenticated sender: bob@b.test)") {
		t.Errorf("the relay's Received: does not show TLS and AUTH:\n%s", msgs[0])
	}
	// Senders of other domains are not sent through it: b.test's MX takes alice's mail.
	res = deliver(t, c, testMessage("direct", "alice@a.test", "carol@b.test"))
	if wantStatus(t, res[0], "2.0.0"); res[0].RemoteMTA != "mx.b.test" {
		t.Errorf("alice's mail went to %q, want the MX", res[0].RemoteMTA)
	}
}

func TestSmarthostWithImplicitTLS(t *testing.T) {
	e := newEnv(t)
	relay := deliverytest.StartSubmissions(t, "relay.test", "127.0.0.7", 0, deliverytest.Mailboxes(t, "b.test", "bob", "carol"))
	e.dns.SetA("relay.test", "127.0.0.7")
	sh := delivery.Smarthost{Host: "relay.test", Port: relay.Port(), TLS: delivery.ImplicitTLS, Username: "bob@b.test", Password: "bob-password"}
	res := deliver(t, smarthostClient(t, e, sh, relay.ClientTLS), testMessage("via-465", "bob@b.test", "carol@b.test"))
	wantStatus(t, res[0], "2.0.0")
	if msgs := relay.WaitInbox("carol@b.test", 1, 30*time.Second); !strings.Contains(msgs[0], "with ESMTPSA") {
		t.Errorf("not over TLS with AUTH:\n%s", msgs[0])
	}
}

func TestSmarthostFailuresAreTemporary(t *testing.T) {
	e := newEnv(t)
	relay := startRelay(t, e)
	msg := func() *delivery.Message { return testMessage("refused", "bob@b.test", "carol@b.test") }

	// A wrong password: the operator can fix it, so the queue keeps the mail.
	sh := delivery.Smarthost{Host: "relay.test", Port: relay.Port(), TLS: delivery.STARTTLS, Username: "bob@b.test", Password: "wrong"}
	res := deliver(t, smarthostClient(t, e, sh, relay.ClientTLS), msg())
	if res[0].Code != 535 || res[0].Permanent() || res[0].Delivered() {
		t.Errorf("wrong password: %+v, want a temporary result carrying the 535", res[0])
	}

	// A certificate that does not verify: no plain-text fallback when TLS is required.
	sh.Password = "bob-password"
	res = deliver(t, smarthostClient(t, e, sh, nil), msg())
	wantStatus(t, res[0], "4.7.5")
	if !strings.Contains(res[0].Text, "certificate") {
		t.Errorf("reason %q does not name the certificate", res[0].Text)
	}

	// A "smarthost" that is really B's MX: STARTTLS but no AUTH, so nothing is sent.
	sh = delivery.Smarthost{Host: "mx.b.test", Port: e.port, TLS: delivery.STARTTLS, Username: "bob@b.test", Password: "bob-password"}
	res = deliver(t, smarthostClient(t, e, sh, e.b.ClientTLS), msg())
	wantStatus(t, res[0], "4.7.0")
	if n := len(relay.Inbox("carol@b.test")) + len(e.b.Inbox("carol@b.test")); n != 0 {
		t.Errorf("%d messages delivered despite the failures", n)
	}
}

func TestLocalDomainGoesIntoTheMailbox(t *testing.T) {
	e := newEnv(t)
	a := deliverytest.StartMX(t, "mx.a.test", "127.0.0.6", 0, deliverytest.Mailboxes(t, "a.test", "alice"))
	c := e.client(t, func(o *delivery.Options) {
		o.Live = a.Live
		o.Local = a.Store
	})
	res := deliver(t, c, testMessage("local", "bob@b.test", "alice@a.test", "ALICE+tag@a.test", "nobody@a.test", "bob@b.test"))
	wantStatus(t, res[0], "2.0.0")
	wantStatus(t, res[1], "2.0.0")
	wantStatus(t, res[2], "5.1.1")
	wantStatus(t, res[3], "2.0.0")
	// One copy for alice, however many of her addresses the message names.
	if n := len(a.WaitInbox("alice@a.test", 1, 30*time.Second)); n != 1 {
		t.Errorf("alice has %d copies, want 1", n)
	}
	if accepts, _ := a.Stats(); accepts != 0 {
		t.Errorf("local mail went over SMTP (%d connections)", accepts)
	}
	if n := len(e.b.WaitInbox("bob@b.test", 1, 30*time.Second)); n != 1 {
		t.Errorf("bob has %d messages", n)
	}
}

// TestLocalMailboxOverQuotaWaits: a queued message for two of our mailboxes, one of them too
// full for it: the other gets its copy, the full one gets 452 4.2.2 (the queue retries it), and
// once the quota allows it the retry delivers exactly one copy there and none again elsewhere.
func TestLocalMailboxOverQuotaWaits(t *testing.T) {
	e := newEnv(t)
	cfg := deliverytest.Mailboxes(t, "a.test", "alice", "carol")
	cfg.Mailboxes[1].Quota = 100 // carol: smaller than any message
	a := deliverytest.StartMX(t, "mx.a.test", "127.0.0.6", 0, cfg)
	c := e.client(t, func(o *delivery.Options) {
		o.Live = a.Live
		o.Local = a.Store
	})
	res := deliver(t, c, testMessage("full", "bob@b.test", "alice@a.test", "carol@a.test", "carol+tag@a.test"))
	wantStatus(t, res[0], "2.0.0")
	for _, r := range res[1:] {
		wantStatus(t, r, "4.2.2")
		if r.Code != 452 || r.Permanent() || r.Delivered() {
			t.Errorf("%s: %d %s, want a temporary 452", r.Rcpt, r.Code, r.Status)
		}
	}
	if n := len(a.Inbox("carol@a.test")); n != 0 {
		t.Errorf("carol, over quota, has %d messages", n)
	}
	// carol makes room (here: a bigger quota); the queue retries only her.
	cfg.Mailboxes[1].Quota = 0
	a.Live.Store(config.NewDirectory(cfg))
	res = deliver(t, c, testMessage("full", "bob@b.test", "carol@a.test"))
	wantStatus(t, res[0], "2.0.0")
	if n := len(a.WaitInbox("carol@a.test", 1, 30*time.Second)); n != 1 {
		t.Errorf("carol has %d messages after the retry, want 1", n)
	}
	if n := len(a.Inbox("alice@a.test")); n != 1 {
		t.Errorf("alice has %d messages, want 1", n)
	}
}
