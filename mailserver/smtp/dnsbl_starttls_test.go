package smtp_test

import (
	"crypto/tls"
	"net"
	"net/textproto"
	"path/filepath"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/msgauth"
	"github.com/kubemail/kubemail/mailserver/smtp"
	"github.com/kubemail/kubemail/mailserver/store/storetest"
)

// The DNSBL answers about a client are kept across STARTTLS (its address does not change): a
// connection that asks about a recipient in plain text, starts TLS and then sends counts one
// lookup per list in kubemail_dnsbl_lookups_total, and the Junk verdict still applies. A new
// connection asks again.
func TestDNSBLAnswersKeptAcrossSTARTTLS(t *testing.T) {
	dns := dnstest.Start(t)
	dns.AddAddr("2.0.0.127.starttls-junk.test", "127.0.0.2")
	cfg := &config.Config{
		Domains: []config.Domain{{
			Name: "tls.test", MaxMessageSize: config.DefaultMaxMessageSize, MaxRecipients: config.DefaultMaxRecipients,
			Antispam: &config.Antispam{DNSBLs: []config.DNSBL{
				{Zone: "starttls-junk.test", Action: config.DNSBLJunk},
				{Zone: "starttls-clean.test", Action: config.DNSBLReject},
			}},
		}},
		Mailboxes: []config.Mailbox{{Address: "bob@tls.test"}},
	}
	mx := deliverytest.StartMXWith(t, "mx.tls.test", "127.0.0.1", 0, cfg, func(o *smtp.Options) {
		o.Verifier = &msgauth.Verifier{Hostname: "mx.tls.test", Resolver: delivery.NewResolver(dns.Addr), Timeout: 5 * time.Second}
		o.SpoolDir = t.TempDir()
	})
	listed := func() float64 { return counter("starttls-junk.test", metrics.DNSBLListed) }
	clean := func() float64 { return counter("starttls-clean.test", metrics.DNSBLNotListed) }
	listedBefore, cleanBefore := listed(), clean()

	// A raw client: go-smtp's starts TLS only before its first command.
	conn := dialFrom(t, "127.0.0.2", mx.Addr)
	tc := textproto.NewConn(conn)
	say := func(cmd string, want int) {
		t.Helper()
		if err := tc.PrintfLine("%s", cmd); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := tc.ReadResponse(want); err != nil {
			t.Fatalf("%s: %v %s", cmd, err, msg)
		}
	}
	if _, msg, err := tc.ReadResponse(220); err != nil {
		t.Fatalf("greeting: %v %s", err, msg)
	}
	say("EHLO client.test", 250)
	// In plain text: the RCPT asks both lists.
	say("MAIL FROM:<alice@sender.test>", 250)
	say("RCPT TO:<bob@tls.test>", 250)
	say("RSET", 250)
	say("STARTTLS", 220)
	tlsCfg := mx.ClientTLS.Clone()
	tlsCfg.ServerName = "mx.tls.test"
	tlsConn := tls.Client(conn, tlsCfg)
	if err := tlsConn.Handshake(); err != nil {
		t.Fatal(err)
	}
	tc = textproto.NewConn(tlsConn)
	say("EHLO client.test", 250)
	say("MAIL FROM:<alice@sender.test>", 250)
	say("RCPT TO:<bob@tls.test>", 250)
	say("DATA", 354)
	w := tc.DotWriter()
	if _, err := w.Write([]byte(testMessage("alice@sender.test", "after-starttls"))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := tc.ReadResponse(250); err != nil {
		t.Fatalf("end of DATA: %v %s", err, msg)
	}
	say("QUIT", 221)
	if d := listed() - listedBefore; d != 1 {
		t.Errorf("kubemail_dnsbl_lookups_total{zone=starttls-junk.test,result=listed} grew by %v over one connection with STARTTLS, want 1", d)
	}
	if d := clean() - cleanBefore; d != 1 {
		t.Errorf("kubemail_dnsbl_lookups_total{zone=starttls-clean.test,result=not_listed} grew by %v over one connection with STARTTLS, want 1", d)
	}
	junk := storetest.Inbox(t, filepath.Join(mx.DataDir, "mail", "tls.test", "bob", ".Junk"))
	wantSubjects(t, "bob's Junk", junk, "after-starttls")

	// The answers belong to the connection: the next one asks again.
	c := gosmtp.NewClient(dialFrom(t, "127.0.0.2", mx.Addr))
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@tls.test", nil); err != nil {
		t.Fatal(err)
	}
	if d := listed() - listedBefore; d != 2 {
		t.Errorf("kubemail_dnsbl_lookups_total{zone=starttls-junk.test,result=listed} grew by %v over two connections, want 2", d)
	}
}

// dialFrom connects to addr from the local address src; the connection is closed when the
// test ends.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn
}
