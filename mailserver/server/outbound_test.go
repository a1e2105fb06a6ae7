package server

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/config"
)

func writeDomain(t *testing.T, domain, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	name := strings.ReplaceAll(domain, ".", "-")
	manifest := fmt.Sprintf(`apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: %[1]s}
spec: {domain: %[2]s}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: %[3]s-%[1]s}
spec:
  address: %[3]s@%[2]s
  passwordSecretRef: {name: %[3]s-pw, key: password}
---
apiVersion: v1
kind: Secret
metadata: {name: %[3]s-pw}
stringData: {password: %[4]s}
`, name, domain, user, password)
	if err := os.WriteFile(filepath.Join(dir, "domain.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// alice@a.test submits a message to bob@b.test on server A; A finds B by its MX record, delivers
// it over SMTP, and bob reads it over IMAP on server B, once.
func TestSubmissionReachesAnotherServer(t *testing.T) {
	dns := dnstest.Start(t)
	b := startServer(t, writeDomain(t, "b.test", "bob", "bob-password"))
	_, bPort, _ := net.SplitHostPort(b.addrs["smtp"])
	var port int
	fmt.Sscan(bPort, &port)
	dns.SetMX("b.test", &net.MX{Host: "mx.b.test.", Pref: 10})
	dns.SetA("mx.b.test", "127.0.0.1")
	aManifests := writeDomain(t, "a.test", "alice", "alice-password")
	a := startServer(t, aManifests, func(o *Options) {
		o.DNSResolver, o.OutboundMXPort = dns.Addr, port
	})

	c, err := gosmtp.DialTLS(a.addrs["submissions"], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@a.test", "alice-password")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	// An authenticated user still cannot send as someone else.
	if err := c.Mail("mallory@a.test", nil); err == nil || !strings.Contains(err.Error(), "553") {
		t.Fatalf("MAIL as another user: %v, want 553", err)
	}
	c.Reset()
	msg := "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: across servers\r\n\r\nHello Bob\r\n"
	if err := c.SendMail("alice@a.test", []string{"bob@b.test"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("submission: %v", err)
	}
	c.Quit()

	body := waitForMessages(t, b.addrs["imaps"], 1)
	for _, want := range []string{"Subject: across servers", "Hello Bob", "Message-ID:", "Date:", "by mx.example.test"} {
		if !strings.Contains(body, want) {
			t.Errorf("bob's copy lacks %q:\n%s", want, body)
		}
	}
	if n := strings.Count(body, "Received:"); n != 2 {
		t.Errorf("bob's copy has %d Received: headers, want 2 (A's submission, B's MX)", n)
	}
	// Without AUTH, A relays nothing: the MX refuses a foreign recipient...
	err = sendMailTo(a.addrs["smtp"], "app@a.test", "bob@b.test")
	if err == nil || !strings.Contains(err.Error(), "554") {
		t.Errorf("unauthenticated relay through A's MX: %v, want 554", err)
	}
	// ...unless the client is in a RelayPolicy's trustedNetworks.
	policy := "apiVersion: mail.kubemail.io/v1alpha1\nkind: RelayPolicy\nmetadata: {name: apps}\nspec: {trustedNetworks: [127.0.0.0/8]}\n"
	if err := os.WriteFile(filepath.Join(aManifests, "policy.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a trusted client relays", func() error { return sendMailTo(a.addrs["smtp"], "app@a.test", "bob@b.test") })
	if body := waitForMessages(t, b.addrs["imaps"], 2); !strings.Contains(body, "Subject: relay?") {
		t.Errorf("the relayed message is not bob's second:\n%s", body)
	}
}

// waitForMessages waits until bob's INBOX holds n messages and returns the last one.
func waitForMessages(t *testing.T, imapsAddr string, n uint32) string {
	t.Helper()
	var body string
	eventually(t, "bob has the message", func() error {
		ic, err := imapclient.DialTLS(imapsAddr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
		if err != nil {
			return err
		}
		defer ic.Close()
		if err := ic.Login("bob@b.test", "bob-password").Wait(); err != nil {
			return err
		}
		sel, err := ic.Select("INBOX", nil).Wait()
		if err != nil {
			return err
		}
		if sel.NumMessages != n {
			return fmt.Errorf("INBOX has %d messages", sel.NumMessages)
		}
		msgs, err := ic.Fetch(imap.SeqSetNum(n), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
		if err != nil {
			return err
		}
		for _, data := range msgs[0].BodySection {
			body = string(data.Bytes)
		}
		return nil
	})
	return body
}

func sendMailTo(addr, from, to string) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, []string{to}, strings.NewReader("Subject: relay?\r\n\r\nx\r\n")); err != nil {
		return err
	}
	return c.Quit()
}

// A RelayPolicy route sends the mail for b.test straight to server B: the DNS server A asks
// has no records at all, so without the route the message would bounce (no MX, no address).
func TestRouteReachesAnotherServerWithoutDNS(t *testing.T) {
	dns := dnstest.Start(t) // empty: every name is NXDOMAIN
	b := startServer(t, writeDomain(t, "b.test", "bob", "bob-password"), func(o *Options) { o.DNSResolver = dns.Addr })
	bHost, bPort, _ := net.SplitHostPort(b.addrs["smtp"])
	aManifests := writeDomain(t, "a.test", "alice", "alice-password")
	policy := fmt.Sprintf(`apiVersion: mail.kubemail.io/v1alpha1
kind: RelayPolicy
metadata: {name: in-cluster}
spec:
  routes:
  - {domains: [b.test], host: %q, port: %s}
`, bHost, bPort)
	if err := os.WriteFile(filepath.Join(aManifests, "policy.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startServer(t, aManifests, func(o *Options) { o.DNSResolver = dns.Addr })

	c, err := gosmtp.DialTLS(a.addrs["submissions"], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@a.test", "alice-password")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	msg := "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: routed\r\n\r\nHello Bob\r\n"
	if err := c.SendMail("alice@a.test", []string{"bob@b.test"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("submission: %v", err)
	}
	c.Quit()
	if body := waitForMessages(t, b.addrs["imaps"], 1); !strings.Contains(body, "Subject: routed") || !strings.Contains(body, "Hello Bob") {
		t.Errorf("bob's copy:\n%s", body)
	}
}

// Routes from every policy reach the static map; the first policy by name wins a domain.
func TestRoutingStaticMap(t *testing.T) {
	cfg := &config.Config{RelayPolicies: []config.RelayPolicy{
		{Name: "a-user", Domains: []string{"a.test"}, Routes: []config.Route{{Domains: []string{"b.test"}, Host: "relay.example", Port: 2525}}},
		{Name: "kubemail-cluster-routes", Routes: []config.Route{
			{Domains: []string{"b.test"}, Host: "b.mail.svc", Port: 25},
			{Domains: []string{"c.test", "d.test"}, Host: "fd00::1", Port: 25},
		}},
		{Name: "smarthost", Smarthost: &config.Smarthost{Host: "smtp.provider.example", Port: 587, TLS: "starttls"}},
	}}
	r := routing(cfg)
	want := map[string]string{"b.test": "relay.example:2525", "c.test": "[fd00::1]:25", "d.test": "[fd00::1]:25"}
	if !reflect.DeepEqual(r.Static, want) {
		t.Errorf("static = %v, want %v", r.Static, want)
	}
	if len(r.Smarthosts) != 1 || r.Smarthosts[0].Smarthost.Host != "smtp.provider.example" {
		t.Errorf("smarthosts = %+v", r.Smarthosts)
	}
	if r := routing(&config.Config{}); r.Static != nil {
		t.Errorf("no policies: static = %v", r.Static)
	}
}
