package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// junkGroupManifests: example.test takes the mail of clients bl.test lists into Junk; its group
// team@ has alice (also postmaster) and outsider@b.test.
const junkGroupManifests = `apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: example-test}
spec:
  domain: example.test
  antispam:
    dnsbls: [{zone: bl.test, action: Junk}]
---
apiVersion: v1
kind: Secret
metadata: {name: pw}
stringData: {password: secret-password}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: alice}
spec: {address: alice@example.test, aliases: [postmaster@example.test], passwordSecretRef: {name: pw, key: password}}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: team}
spec: {address: team@example.test, members: [alice@example.test, outsider@b.test]}
`

// sendFromIP sends msg to the MX at addr from the loopback address src.
func sendFromIP(addr, src, from string, to []string, msg string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := gosmtp.NewClient(conn)
	defer c.Close()
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// Mail to a group from a client a Junk-action DNSBL lists is suspected spam: the local member's
// copy goes into Junk, stored before the 250, and the outside member gets nothing (no queue
// entry, one log line). The same message from an unlisted client reaches both, the local member
// in the INBOX.
func TestGroupSuspectedSpamNotForwarded(t *testing.T) {
	g := newRouted(t, "b.test", "outsider")
	g.dns.AddAddr("2.0.0.127.bl.test", "127.0.0.2")
	g.write(t, "m.yaml", junkGroupManifests)
	g.start(t)
	srv, data, b := g.srv, g.data, g.remote
	alice := filepath.Join(data, "mail", "example.test", "alice")
	queued := filepath.Join(data, "queue", "msg")

	msg := "From: someone@remote.test\r\nTo: team@example.test\r\nSubject: %s\r\n\r\nHello team\r\n"
	if err := sendFromIP(srv.addrs["smtp"], "127.0.0.2", "someone@remote.test", []string{"team@example.test"}, fmt.Sprintf(msg, "listed")); err != nil {
		t.Fatalf("from the listed client: %v", err)
	}
	// Delivered directly: on disk before the 250.
	wantMaildir(t, filepath.Join(alice, ".Junk"), "listed")
	wantMaildir(t, alice)
	if entries, err := os.ReadDir(queued); err != nil && !errors.Is(err, os.ErrNotExist) || len(entries) > 0 {
		t.Errorf("the suspect group mail left queue entries %v (err %v)", entries, err)
	}
	g.waitLog(t, "Not forwarded to a group's outside member: suspected spam", "group=team@example.test",
		"member=outsider@b.test", `reason="dnsbl bl.test"`)

	if err := sendFromIP(srv.addrs["smtp"], "127.0.0.1", "someone@remote.test", []string{"team@example.test"}, fmt.Sprintf(msg, "clean")); err != nil {
		t.Fatalf("from an unlisted client: %v", err)
	}
	outside := b.WaitInbox("outsider@b.test", 1, 30*time.Second)
	eventually(t, "the queue empties", func() error {
		entries, err := os.ReadDir(queued)
		if err != nil || len(entries) > 0 {
			return fmt.Errorf("queue: %v (err %v)", entries, err)
		}
		return nil
	})
	// The queue is empty: whatever it was given has been delivered.
	if outside = b.Inbox("outsider@b.test"); len(outside) != 1 || !strings.Contains(outside[0], "Subject: clean") {
		t.Errorf("the outside member got %d messages, want only the clean one:\n%s", len(outside), strings.Join(outside, "\n----\n"))
	}
	wantMaildir(t, alice, "clean")
	wantMaildir(t, filepath.Join(alice, ".Junk"), "listed")
}
