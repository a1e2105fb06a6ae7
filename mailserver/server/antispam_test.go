package server

import (
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/store/storetest"
)

// antispamManifests serves b.test, whose MailDomain rejects clients bl.test lists, and j.test,
// which takes their mail into Junk; bob@b.test and jo@j.test.
const antispamManifests = `apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: b-test}
spec:
  domain: b.test
  antispam:
    dnsbls: [{zone: bl.test}]
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: j-test}
spec:
  domain: j.test
  antispam:
    dnsbls: [{zone: bl.test, action: Junk, returnCodes: [127.0.0.2]}]
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: bob-b-test}
spec: {address: bob@b.test, passwordSecretRef: {name: pw, key: bob}}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: jo-j-test}
spec: {address: jo@j.test, passwordSecretRef: {name: pw, key: jo}}
---
apiVersion: v1
kind: Secret
metadata: {name: pw}
stringData: {bob: bob-password, jo: jo-password}
`

// swaksFrom runs swaks against addr from the loopback address src and returns its transcript
// and whether the message was accepted.
func swaksFrom(t *testing.T, addr, src, to, subject string) (string, bool) {
	t.Helper()
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("swaks is not installed; `make test-deps` installs it")
		}
		t.Skip("swaks is not installed; run `make test-deps`")
	}
	out, err := exec.Command(swaks, "--server", addr, "--local-interface", src, "--helo", "client.test",
		"--from", "x@sender.test", "--to", to, "--header", "Subject: "+subject, "--timeout", "30").CombinedOutput()
	return string(out), err == nil && strings.Contains(string(out), "<-  250 2.0.0 OK: queued as")
}

// The spec.antispam of the manifests is in force in the real server: swaks from 127.0.0.2 (which
// bl.test lists) gets 554 5.7.1 at RCPT naming the list for b.test, while 127.0.0.1 is served;
// for j.test the listed client's mail lands in Junk; the listed address's own user, logged in
// on submission, sends to b.test all the same.
func TestAntispamFromManifests(t *testing.T) {
	dns := dnstest.Start(t)
	dns.AddAddr("2.0.0.127.bl.test", "127.0.0.2")
	dns.AddTXT("2.0.0.127.bl.test", "https://bl.test/lookup?ip=127.0.0.2")
	manifests := t.TempDir()
	if err := os.WriteFile(filepath.Join(manifests, "antispam.yaml"), []byte(antispamManifests), 0o644); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	r := startServer(t, manifests, func(o *Options) { o.DataDir, o.DNSResolver = data, dns.Addr })
	mail := filepath.Join(data, "mail")

	out, ok := swaksFrom(t, r.addrs["smtp"], "127.0.0.2", "bob@b.test", "from a listed client")
	if ok || !strings.Contains(out, "<** 554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using bl.test; https://bl.test/lookup?ip=127.0.0.2") {
		t.Errorf("swaks from 127.0.0.2 to b.test was not refused at RCPT naming the list:\n%s", out)
	}
	if out, ok := swaksFrom(t, r.addrs["smtp"], "127.0.0.1", "bob@b.test", "from a clean client"); !ok {
		t.Errorf("swaks from 127.0.0.1 was refused:\n%s", out)
	}
	if out, ok := swaksFrom(t, r.addrs["smtp"], "127.0.0.2", "jo@j.test", "into junk"); !ok {
		t.Errorf("swaks from 127.0.0.2 to j.test (action Junk) was refused:\n%s", out)
	}
	wantMaildir(t, filepath.Join(mail, "j.test", "jo", ".Junk"), "into junk")
	wantMaildir(t, filepath.Join(mail, "j.test", "jo"))

	// bob, sending from the listed address through submission (STARTTLS, AUTH).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", r.addrs["submission"])
	if err != nil {
		t.Fatal(err)
	}
	c, err := gosmtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "bob@b.test", "bob-password")); err != nil {
		t.Fatal(err)
	}
	msg := "From: bob@b.test\r\nTo: bob@b.test\r\nSubject: submitted\r\n\r\nfrom home\r\n"
	if err := c.SendMail("bob@b.test", []string{"bob@b.test"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("submission from the listed address: %v", err)
	}
	c.Quit()
	wantMaildir(t, filepath.Join(mail, "b.test", "bob"), "from a clean client", "submitted")
}

// wantMaildir checks the subjects of the messages in a Maildir folder, in any order (names do
// not sort by arrival within a second). Mail got its 250 only once on disk, so there is nothing
// to wait for.
func wantMaildir(t *testing.T, dir string, subjects ...string) {
	t.Helper()
	var got []string
	for _, m := range storetest.Inbox(t, dir) {
		_, rest, _ := strings.Cut(m.Data, "\r\nSubject: ")
		s, _, _ := strings.Cut(rest, "\r\n")
		got = append(got, s)
	}
	slices.Sort(got)
	slices.Sort(subjects)
	if strings.Join(got, "|") != strings.Join(subjects, "|") {
		t.Errorf("%s has %q, want %q", dir, got, subjects)
	}
}
