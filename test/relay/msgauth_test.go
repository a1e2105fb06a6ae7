package relay

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/test/relay/harness"
)

var dkimRecordRE = regexp.MustCompile(`msg="DKIM key ready" domain=(\S+) record=(\S+) txt="([^"]+)"`)

// publishDKIM publishes the DKIM record server k logs for domain.
func publishDKIM(t *testing.T, w *world, k *harness.Kubemail, domain string) {
	t.Helper()
	for _, m := range dkimRecordRE.FindAllStringSubmatch(k.Logs(), -1) {
		if m[1] == domain {
			w.dns.AddTXT(m[2], m[3])
			return
		}
	}
	t.Fatalf("%s logged no DKIM record for %s", k.Hostname, domain)
}

// With a.test's DKIM key, SPF and DMARC (p=reject) records published, alice's mail passes all
// three at B, which says so in Authentication-Results; a forgery of alice's address sent to B
// from another address (SPF fail, no signature) is refused with 550 5.7.1.
func TestDKIMSPFDMARCAtB(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "", alice)
	b := w.server(3, "b.test", "", bob)
	publishDKIM(t, w, a, "a.test")
	// A's connections to B come from 127.0.0.1 (the source address of loopback routes).
	w.dns.AddTXT("a.test", "v=spf1 ip4:127.0.0.1 -all")
	w.dns.AddTXT("_dmarc.a.test", "v=DMARC1; p=reject")

	if err := submit(a, alice, "a.test", "bob@b.test", "Signed", "Hello, verifiably"); err != nil {
		t.Fatal(err)
	}
	msg := waitInbox(t, b, bob, "b.test", 1, 30*time.Second)[0]
	need(t, "bob's copy", msg, "DKIM-Signature:", "d=a.test", "s=kubemail", "Authentication-Results: mx.b.test;")
	ar := unfoldedField(msg, "Authentication-Results")
	need(t, "Authentication-Results", ar, "spf=pass", "dkim=pass header.d=a.test", "dmarc=pass")

	// mallory on another address forges alice: no signature, SPF fail, DMARC p=reject.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(harness.IP(66))}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", b.Addr("25"))
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClient(conn)
	defer c.Close()
	forged := "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: Forged\r\nMessage-ID: <forged@a.test>\r\n\r\nSend money\r\n"
	err = c.SendMail("alice@a.test", []string{"bob@b.test"}, strings.NewReader(forged))
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("a DMARC-failing forgery: %v, want 550 5.7.1", err)
	} else {
		t.Logf("the forgery got: %v", err)
	}
	if n := len(maildirFiles(b.Maildir("bob@b.test"))); n != 1 {
		t.Errorf("bob has %d messages, want only the signed one", n)
	}
}

// unfoldedField returns the first header field name of msg, unfolded.
func unfoldedField(msg, name string) string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	head = strings.NewReplacer("\r\n\t", " ", "\r\n ", " ").Replace(head)
	for _, f := range strings.Split(head, "\r\n") {
		if strings.HasPrefix(strings.ToLower(f), strings.ToLower(name)+":") {
			return f
		}
	}
	return fmt.Sprintf("(no %s field)", name)
}
