package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// groupDomain is example.test with alice (also postmaster), bob and carol.
const groupDomain = `apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: example-test}
spec: {domain: example.test}
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
kind: Mailbox
metadata: {name: bob}
spec: {address: bob@example.test, passwordSecretRef: {name: pw, key: password}}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol}
spec: {address: carol@example.test, passwordSecretRef: {name: pw, key: password}}
`

const groupsManifest = `apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: team}
spec: {address: team@example.test, members: [alice@example.test, bob@example.test, outsider@b.test%s]}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: board}
spec: {address: board@example.test, members: [alice@example.test, bob@example.test], acceptFrom: Members}
`

// startGroupServer serves groupDomain and groupsManifest, and routes b.test (no DNS: nothing
// leaves except by the route) to a real kubemail MX with outsider@b.test.
func startGroupServer(t *testing.T) *routedSetup {
	g := newRouted(t, "b.test", "outsider")
	g.write(t, "domain.yaml", groupDomain)
	g.write(t, "groups.yaml", fmt.Sprintf(groupsManifest, ""))
	g.start(t)
	return g
}

func send(addr, from string, to []string, msg string) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// Mail from outside to team@ (and to alice directly) reaches alice and bob once each; the outside
// member's copy leaves through the queue with the group's bounce address as envelope sender and
// an X-Loop field, and a message coming back with that field is refused as a loop.
func TestGroupDeliversToEachMemberOnce(t *testing.T) {
	g := startGroupServer(t)
	msg := "From: someone@remote.test\r\nTo: team@example.test\r\nSubject: to the team\r\n\r\nHello team\r\n"
	if err := send(g.srv.addrs["smtp"], "someone@remote.test", []string{"team+news@example.test", "alice@example.test"}, msg); err != nil {
		t.Fatalf("MX: %v", err)
	}
	outside := g.remote.WaitInbox("outsider@b.test", 1, 30*time.Second)
	if !strings.Contains(outside[0], "X-Loop: team@example.test\r\n") || !strings.Contains(outside[0], "Hello team") {
		t.Errorf("the outside member's copy:\n%s", outside[0])
	}
	// B logs the transaction just after it stored the message: poll for the line.
	eventually(t, "B logs the group's bounce address as envelope sender", func() error {
		if !strings.Contains(g.remote.Logs(), "from=team+bounces@example.test") {
			return fmt.Errorf("B's log:\n%s", g.remote.Logs())
		}
		return nil
	})
	bob := g.waitInbox(t, "bob@example.test", 1)
	// alice's direct copy was stored before the 250; the group's local copies (bob's) are one
	// store delivery, so once bob has his, a second copy for alice would be there too.
	if alice := g.inbox(t, "alice@example.test"); len(alice) != 1 || len(bob) != 1 {
		t.Fatalf("alice has %d copies and bob %d, want 1 each", len(alice), len(bob))
	}

	looped := "X-Loop: team@example.test\r\nSubject: back again\r\n\r\nloop\r\n"
	err := send(g.srv.addrs["smtp"], "outsider@b.test", []string{"team@example.test"}, looped)
	if e, ok := err.(*gosmtp.SMTPError); !ok || e.Code != 554 || e.EnhancedCode != (gosmtp.EnhancedCode{5, 4, 6}) {
		t.Fatalf("a looping message got %v, want 554 5.4.6", err)
	}
}

// acceptFrom Members refuses an outside sender with 550 5.7.1 naming the policy, and takes a
// member's mail through submission.
func TestGroupMembersOnly(t *testing.T) {
	g := startGroupServer(t)
	err := send(g.srv.addrs["smtp"], "someone@remote.test", []string{"board@example.test"}, "Subject: hi\r\n\r\nx\r\n")
	if e, ok := err.(*gosmtp.SMTPError); !ok || e.Code != 550 || e.EnhancedCode != (gosmtp.EnhancedCode{5, 7, 1}) || !strings.Contains(e.Message, "acceptFrom Members") {
		t.Fatalf("a non-member got %v, want 550 5.7.1 naming acceptFrom Members", err)
	}
	c, err := gosmtp.DialTLS(g.srv.addrs["submissions"], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.test", "secret-password")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.SendMail("alice@example.test", []string{"board@example.test"}, strings.NewReader("From: alice@example.test\r\nSubject: board\r\n\r\nminutes\r\n")); err != nil {
		t.Fatalf("a member's submission: %v", err)
	}
	if bob := g.waitInbox(t, "bob@example.test", 1); !strings.Contains(bob[0], "minutes") {
		t.Errorf("bob's copy:\n%s", bob[0])
	}
}

// A member added to the manifests gets the group's mail without a restart.
func TestGroupReloadAddsMember(t *testing.T) {
	g := startGroupServer(t)
	g.write(t, "groups.yaml", fmt.Sprintf(groupsManifest, ", carol@example.test"))
	eventually(t, "the server reloads", func() error {
		if !strings.Contains(g.srv.log.String(), "Reloaded config") {
			return fmt.Errorf("no reload logged yet")
		}
		return nil
	})
	if err := send(g.srv.addrs["smtp"], "someone@remote.test", []string{"team@example.test"}, "Subject: after the reload\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	if carol := g.waitInbox(t, "carol@example.test", 1); !strings.Contains(carol[0], "after the reload") {
		t.Errorf("carol's copy:\n%s", carol[0])
	}
}

// A bad MailGroup stops the start-up with the file, the object and the field.
func TestStartupRefusesBadGroups(t *testing.T) {
	for _, tc := range []struct{ name, group, want string }{
		{"loop", `apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: a}
spec: {address: a@example.test, members: [b@example.test]}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: b}
spec: {address: b@example.test, members: [a@example.test]}
`, `MailGroup "default/a": spec.members[0]: group loop: a@example.test → b@example.test → a@example.test`},
		{"alias", `apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: pm}
spec: {address: postmaster@example.test, members: [bob@example.test]}
`, `MailGroup "default/pm": spec.address: address "postmaster@example.test" is already taken by Mailbox default/alice`},
		{"domain", `apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: elsewhere}
spec: {address: team@unknown.test, members: [bob@example.test]}
`, `MailGroup "default/elsewhere": spec.address: domain "unknown.test"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "domain.yaml"), []byte(groupDomain), 0o644)
			os.WriteFile(filepath.Join(dir, "group.yaml"), []byte(tc.group), 0o644)
			err := Run(context.Background(), Options{Manifests: dir, DataDir: t.TempDir(), SMTPAddr: "127.0.0.1:0"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "group.yaml (document") {
				t.Fatalf("err = %v\nwant the file and %s", err, tc.want)
			}
		})
	}
}
