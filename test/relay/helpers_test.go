package relay

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/test/relay/harness"
)

var (
	alice = harness.Mailbox{Local: "alice", Password: "alice-password"}
	bob   = harness.Mailbox{Local: "bob", Password: "bob-password"}
)

// world is one test's loopback network: the DNS server and the servers started on it.
type world struct {
	t   *testing.T
	dns *harness.DNS
}

func newWorld(t *testing.T) *world {
	t.Helper()
	requireRoot(t)
	requireTool(t, "python3")
	d, err := harness.StartDNS(harness.IP(53) + ":53")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return &world{t: t, dns: d}
}

// server starts kubemail for domain on harness.IP(host), publishes mx.<domain> as its MX, and
// kills it when the test ends (printing its log if the test failed). policy is a RelayPolicy
// spec, "" for none.
func (w *world) server(host int, domain, policy string, mailboxes ...harness.Mailbox) *harness.Kubemail {
	t := w.t
	t.Helper()
	manifests := t.TempDir()
	if err := harness.WriteDomain(manifests, domain, mailboxes, policy); err != nil {
		t.Fatal(err)
	}
	k := &harness.Kubemail{Bin: kubemailBin, IP: harness.IP(host), Hostname: "mx." + domain,
		Manifests: manifests, DataDir: t.TempDir(), DNS: w.dns.Addr}
	if err := k.Start(); err != nil {
		t.Fatalf("%v\n%s", err, k.Logs())
	}
	w.dns.SetMX(domain, "mx."+domain, k.IP)
	t.Cleanup(func() {
		k.Kill()
		// A race-detector build (KUBEMAIL_BIN) reports data races on stderr as they happen.
		if strings.Contains(k.Logs(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", k.Hostname)
		}
		if t.Failed() {
			logs := k.Logs()
			if len(logs) > 20000 {
				logs = "…" + logs[len(logs)-20000:]
			}
			t.Logf("log of %s:\n%s", k.Hostname, logs)
		}
	})
	return k
}

// eventually polls check every 50 ms until it returns nil, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const submitPy = `
import smtplib, ssl, sys
host, user, pw, frm, to, subject, body = sys.argv[1:8]
msg = "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n" % (frm, to, subject, body)
with smtplib.SMTP(host, 587, timeout=30) as s:
    s.starttls(context=ssl._create_unverified_context())
    s.login(user, pw)
    s.sendmail(frm, [to], msg)
`

// submit sends a message as user over the submission port (587, STARTTLS, AUTH) of k with
// Python's smtplib; the error carries the reply that refused it.
func submit(k *harness.Kubemail, user harness.Mailbox, domain, to, subject, body string) error {
	from := user.Local + "@" + domain
	cmd := exec.Command("python3", "-c", submitPy, k.IP, from, user.Password, from, to, subject, body)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("smtplib: %w: %s", err, out)
	}
	return nil
}

const fetchPy = `
import imaplib, json, ssl, sys
host, user, pw = sys.argv[1:4]
m = imaplib.IMAP4_SSL(host, 993, ssl_context=ssl._create_unverified_context(), timeout=30)
m.login(user, pw)
m.select("INBOX", readonly=True)
typ, data = m.search(None, "ALL")
out = []
for num in data[0].split():
    typ, d = m.fetch(num, "(BODY.PEEK[])")
    out.append(d[0][1].decode("utf-8", "replace"))
m.logout()
print(json.dumps(out))
`

// inbox reads every message of user's INBOX at k over IMAPS with Python's imaplib.
func inbox(k *harness.Kubemail, user harness.Mailbox, domain string) ([]string, error) {
	cmd := exec.Command("python3", "-c", fetchPy, k.IP, user.Local+"@"+domain, user.Password)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return nil, fmt.Errorf("imaplib: %w: %s", err, stderr)
	}
	var msgs []string
	if err := json.Unmarshal(out, &msgs); err != nil {
		return nil, fmt.Errorf("imaplib output %q: %w", out, err)
	}
	return msgs, nil
}

// waitInbox waits until user's INBOX holds exactly n messages and returns them.
func waitInbox(t *testing.T, k *harness.Kubemail, user harness.Mailbox, domain string, n int, timeout time.Duration) []string {
	t.Helper()
	var msgs []string
	eventually(t, timeout, fmt.Sprintf("%s@%s has %d messages", user.Local, domain, n), func() error {
		var err error
		if msgs, err = inbox(k, user, domain); err != nil {
			return err
		}
		if len(msgs) != n {
			return fmt.Errorf("INBOX has %d messages", len(msgs))
		}
		return nil
	})
	return msgs
}

// waitQueueEmpty waits until k's outbound queue holds no message.
func waitQueueEmpty(t *testing.T, k *harness.Kubemail, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, k.Hostname+"'s queue is empty", func() error {
		if ids := k.QueueIDs(); len(ids) > 0 {
			return fmt.Errorf("queued: %v", ids)
		}
		return nil
	})
}

// maildirFiles lists the message files of a Maildir's new/ and cur/.
func maildirFiles(dir string) []string {
	var files []string
	for _, sub := range []string{"new", "cur"} {
		names, _ := filepath.Glob(filepath.Join(dir, sub, "*"))
		files = append(files, names...)
	}
	return files
}

// subjectOf reads the Subject: header of a message file.
func subjectOf(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line == "\r" {
			return ""
		}
		if v, ok := strings.CutPrefix(line, "Subject: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// need fails the test unless s contains every one of wants.
func need(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

// sendPlain sends one message over SMTP without TLS or AUTH, as a server or an application on
// a trusted network would.
func sendPlain(addr, from string, rcpts []string, msg string) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.SendMail(from, rcpts, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// sendPlainAuth submits msg as user to several recipients with go-smtp's client (587, STARTTLS,
// AUTH PLAIN).
func sendPlainAuth(k *harness.Kubemail, user harness.Mailbox, domain string, rcpts []string, msg string) error {
	c, err := gosmtp.DialStartTLS(k.Addr(harness.SubmissionPort), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	defer c.Close()
	from := user.Local + "@" + domain
	if err := c.Auth(sasl.NewPlainClient("", from, user.Password)); err != nil {
		return err
	}
	if err := c.SendMail(from, rcpts, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}
