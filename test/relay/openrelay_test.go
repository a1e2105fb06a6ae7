package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/test/relay/harness"
)

// A's MX, to a client that neither authenticated nor is in a trusted network, relays nothing:
// every classic trick gets a 5xx and nothing reaches B. Mail for A's own users from anyone is
// accepted: that is what an MX is for. A does have trusted networks (10.0.0.0/8 and one
// loopback address, .66), and a client on .66 does relay: the refusals are not for want of a
// policy.
func TestNoOpenRelay(t *testing.T) {
	w := newWorld(t)
	trusted := harness.IP(66)
	a := w.server(2, "a.test", fmt.Sprintf("{trustedNetworks: [10.0.0.0/8, %s/32]}", trusted), alice)
	b := w.server(3, "b.test", "", bob)
	w.dns.SetMX("c.test", "mx.c.test", harness.IP(4))

	tricks := []struct{ name, from, rcpt string }{
		{"foreign recipient", "alice@a.test", "bob@b.test"},
		{"foreign recipient, mixed case", "alice@a.test", "Bob@B.Test"},
		{"percent hack", "alice@a.test", "bob%b.test@a.test"},
		{"bang path", "alice@a.test", "b.test!bob@a.test"},
		{"source route", "alice@a.test", "@a.test:bob@b.test"},
		{"source route via two hosts", "alice@a.test", "@a.test,@mx.a.test:bob@b.test"},
		{"quoted local part", "alice@a.test", `"bob@b.test"@a.test`},
		{"quoted percent hack", "alice@a.test", `"bob%b.test"@a.test`},
		{"unquoted double at", "alice@a.test", "bob@b.test@a.test"},
		{"foreign domain with a trailing dot", "alice@a.test", "bob@b.test."},
		{"address literal of B", "alice@a.test", "bob@[" + b.IP + "]"},
		{"address literal of A", "alice@a.test", "alice@[" + a.IP + "]"},
		{"foreign sender, foreign recipient", "mallory@c.test", "bob@b.test"},
		{"null sender, foreign recipient", "", "bob@b.test"},
	}
	for _, tc := range tricks {
		t.Run(tc.name, func(t *testing.T) {
			c, err := gosmtp.Dial(a.Addr("25"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("relay-tester.c.test"); err != nil {
				t.Fatal(err)
			}
			if err := c.Mail(tc.from, nil); err != nil {
				t.Fatalf("MAIL FROM:<%s>: %v", tc.from, err)
			}
			err = c.Rcpt(tc.rcpt, nil)
			var serr *gosmtp.SMTPError
			if errors.As(err, &serr) && serr.Code >= 500 && serr.Code < 600 {
				t.Logf("RCPT TO:<%s>: %d %s", tc.rcpt, serr.Code, serr.Message)
				return
			}
			if err == nil {
				// Show what would have happened: send it and fail.
				if wc, derr := c.Data(); derr == nil {
					wc.Write([]byte("Subject: relayed\r\n\r\nrelayed\r\n"))
					derr = wc.Close()
					t.Errorf("RCPT TO:<%s> accepted, DATA: %v", tc.rcpt, derr)
					return
				}
			}
			t.Errorf("RCPT TO:<%s>: %v, want a 5xx reply", tc.rcpt, err)
		})
	}

	// Submission without AUTH relays nothing either.
	t.Run("submission without AUTH", func(t *testing.T) {
		c, err := gosmtp.DialStartTLS(a.Addr("587"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.Mail("alice@a.test", nil)
		var serr *gosmtp.SMTPError
		if !errors.As(err, &serr) || serr.Code != 530 {
			t.Errorf("MAIL without AUTH on 587: %v, want 530", err)
		}
	})

	// A foreign sender writing to a local user is normal MX traffic.
	c, err := gosmtp.Dial(a.Addr("25"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("mallory@c.test", []string{"alice@a.test"}, strings.NewReader("Subject: Hello from c.test\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("a foreign sender to a local user: %v", err)
	}
	c.Quit()
	if n := len(maildirFiles(a.Maildir("alice@a.test"))); n != 1 {
		t.Errorf("alice has %d messages after the 250, want 1", n)
	}

	// A control message from the trusted address: once it is at B and A's queue is empty, any
	// message a trick had slipped into the queue would have been sent before or with it.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(trusted)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", a.Addr("25"))
	if err != nil {
		t.Fatal(err)
	}
	tc := gosmtp.NewClient(conn)
	defer tc.Close()
	if err := tc.SendMail("app@a.test", []string{"bob@b.test"}, strings.NewReader("Subject: Control\r\n\r\nthe only one\r\n")); err != nil {
		t.Fatalf("relaying from the trusted address %s: %v", trusted, err)
	}
	tc.Quit()
	msgs := waitInbox(t, b, bob, "b.test", 1, 30*time.Second)
	need(t, "bob's only message", msgs[0], "Subject: Control")
	waitQueueEmpty(t, a, 10*time.Second)
	if n := len(maildirFiles(b.Maildir("bob@b.test"))); n != 1 {
		t.Errorf("bob's Maildir has %d messages, want only the control message", n)
	}
	if n := len(maildirFiles(a.Maildir("alice@a.test"))); n != 1 {
		t.Errorf("alice has %d messages, want 1 (no bounces)", n)
	}
}
