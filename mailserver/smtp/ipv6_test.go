package smtp_test

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
	"github.com/kubemail/kubemail/mailserver/msgauth"
	"github.com/kubemail/kubemail/mailserver/smtp"
	"github.com/kubemail/kubemail/mailserver/store/storetest"
)

// An IPv6 client over a real connection: the MX listens on [::1] and the client connects from
// ::1. A Reject DNSBL that lists ::1 under its nibble name refuses the recipient with 554 5.7.1
// naming the zone and the client's address; a domain without the list takes the message, with
// iprev=pass for ::1 in its Authentication-Results (PTR and AAAA agree).
func TestIPv6ClientDNSBLAndIPRev(t *testing.T) {
	probe, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("this machine has no IPv6 loopback (::1): %v", err)
	}
	probe.Close()

	dns6 := dnstest.Start(t)
	rev, err := dns.ReverseAddr("::1") // 1.0.0.…0.ip6.arpa.: the 32 nibbles reversed
	if err != nil {
		t.Fatal(err)
	}
	nibbles := strings.TrimSuffix(rev, "ip6.arpa.")
	if strings.Count(nibbles, ".") != 32 {
		t.Fatalf("nibble name %q", nibbles)
	}
	dns6.AddAddr(nibbles+"v6bl.test", "127.0.0.2")
	dns6.AddPTR("::1", "mx.v6.test")
	dns6.AddAddr("mx.v6.test", "::1")

	cfg := &config.Config{}
	for _, d := range []config.Domain{
		{Name: "listed6.test", Antispam: &config.Antispam{DNSBLs: []config.DNSBL{{Zone: "v6bl.test", Action: config.DNSBLReject}}}},
		{Name: "plain6.test"},
	} {
		d.MaxMessageSize, d.MaxRecipients = config.DefaultMaxMessageSize, config.DefaultMaxRecipients
		cfg.Domains = append(cfg.Domains, d)
		cfg.Mailboxes = append(cfg.Mailboxes, config.Mailbox{Address: "bob@" + d.Name})
	}
	mx := deliverytest.StartMXWith(t, "mx.b.test", "::1", 0, cfg, func(o *smtp.Options) {
		o.Verifier = &msgauth.Verifier{Hostname: "mx.b.test", Resolver: delivery.NewResolver(dns6.Addr), Timeout: 5 * time.Second}
		o.SpoolDir = t.TempDir()
	})
	if !strings.HasPrefix(mx.Addr, "[::1]:") {
		t.Fatalf("the MX listens on %s, want [::1]", mx.Addr)
	}

	c := gosmtp.NewClient(dialFrom(t, "::1", mx.Addr))
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("x@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	wantReply(t, c.Rcpt("bob@listed6.test", nil), 554, gosmtp.EnhancedCode{5, 7, 1},
		"Client host [::1] blocked using v6bl.test")
	if err := c.Rcpt("bob@plain6.test", nil); err != nil {
		t.Fatalf("RCPT in a domain without the list: %v", err)
	}
	if err := send(t, c, testMessage("x@sender.test", "from-ipv6")); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	msgs := storetest.Inbox(t, filepath.Join(mx.DataDir, "mail", "plain6.test", "bob"))
	wantSubjects(t, "bob@plain6.test's INBOX", msgs, "from-ipv6")
	if len(msgs) != 1 {
		return
	}
	header, _, _ := strings.Cut(msgs[0].Data, "\r\nReceived: ")
	// An IPv6 address is not an RFC 8601 pvalue token (':'): it is quoted.
	if want := "\tiprev=pass policy.iprev=\"::1\"\r\n"; !strings.HasPrefix(header, "Authentication-Results: mx.b.test;") || !strings.Contains(header+"\r\n", want) {
		t.Errorf("Authentication-Results lacks %q:\n%s", want, header)
	}
	if got := storetest.Inbox(t, filepath.Join(mx.DataDir, "mail", "listed6.test", "bob")); len(got) != 0 {
		t.Errorf("bob@listed6.test got %d messages from a listed client", len(got))
	}
}
