package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/msgauth"
)

// alice@a.test submits to bob@b.test: A signs with a.test's key (made at start-up), B verifies
// SPF, DKIM and DMARC and records them in Authentication-Results; a forged a.test From: sent
// straight to B's MX is refused.
func TestSignedAtAVerifiedAtB(t *testing.T) {
	dns := dnstest.Start(t)
	b := startServer(t, writeDomain(t, "b.test", "bob", "bob-password"), func(o *Options) { o.DNSResolver = dns.Addr })
	_, bPort, _ := net.SplitHostPort(b.addrs["smtp"])
	var port int
	fmt.Sscan(bPort, &port)
	dns.SetMX("b.test", &net.MX{Host: "mx.b.test.", Pref: 10})
	dns.SetA("mx.b.test", "127.0.0.1")
	aData := t.TempDir()
	a := startServer(t, writeDomain(t, "a.test", "alice", "alice-password"), func(o *Options) {
		o.DataDir, o.DNSResolver, o.OutboundMXPort = aData, dns.Addr, port
	})
	name, value, err := msgauth.NewKeys(aData+"/dkim", msgauth.KeysOptions{}).DNSRecord("a.test")
	if err != nil {
		t.Fatal(err)
	}
	dns.SetTXT(name, value)
	dns.SetTXT("a.test", "v=spf1 ip4:127.0.0.1 -all")
	dns.SetTXT("_dmarc.a.test", "v=DMARC1; p=reject")

	c, err := gosmtp.DialTLS(a.addrs["submissions"], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@a.test", "alice-password")); err != nil {
		t.Fatal(err)
	}
	msg := "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: signed\r\n\r\nHello Bob\r\n"
	if err := c.SendMail("alice@a.test", []string{"bob@b.test"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	body := waitForMessages(t, b.addrs["imaps"], 1)
	for _, want := range []string{"Authentication-Results: mx.example.test;", "spf=pass", "dkim=pass header.d=a.test", "dmarc=pass"} {
		if !strings.Contains(body, want) {
			t.Errorf("bob's copy lacks %q:\n%s", want, body)
		}
	}
	// A forged a.test From: (unsigned, envelope sender evil.test whose SPF passes but does not
	// align) is refused.
	dns.SetTXT("evil.test", "v=spf1 ip4:127.0.0.1 -all")
	fc, err := gosmtp.Dial(b.addrs["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	err = fc.SendMail("m@evil.test", []string{"bob@b.test"}, strings.NewReader("From: alice@a.test\r\nSubject: forged\r\n\r\nx\r\n"))
	var serr *gosmtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != 550 || serr.EnhancedCode != (gosmtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("forged From: %v, want 550 5.7.1", err)
	}
}
