package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const clientTimeout = 60 * time.Second

// runClient runs an external client with a time limit and returns its combined output and exit
// code; it fails the test only if the program could not be run at all.
func runClient(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out after %v; output:\n%s", name, strings.Join(args, " "), clientTimeout, out.String())
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", name, err)
	}
	return out.String(), 0
}

// swaksArgs are the options every swaks run shares: the MX listener, an outside sender, and
// STARTTLS verified against the test's certificate (an MX must offer it).
func (s *server) swaksArgs(to string) []string {
	host, port := s.hostPort("smtp")
	return []string{
		"--server", host, "--port", port,
		"--helo", "client.remote.test",
		"--from", "sender@remote.test",
		"--to", to,
		"--tls", "--tls-verify", "--tls-ca-path", s.cert.certFile,
		"--timeout", "30",
	}
}

// sendMail sends one message with swaks through the MX and fails the test unless it is accepted.
func (s *server) sendMail(t *testing.T, to, subject, body string) {
	t.Helper()
	swaks := requireTool(t, "swaks")
	bodyFile := filepath.Join(t.TempDir(), "body.txt")
	writeFile(t, bodyFile, body)
	args := append(s.swaksArgs(to), "--header", "Subject: "+subject, "--body", "@"+bodyFile)
	out, code := runClient(t, swaks, args...)
	if code != 0 {
		t.Fatalf("swaks to %s exited %d; output:\n%s", to, code, out)
	}
	if !strings.Contains(out, "<-  250") {
		t.Fatalf("swaks to %s: no 250 reply seen; output:\n%s", to, out)
	}
}

// imapMessage is one message as Python imaplib saw it.
type imapMessage struct {
	UID        uint32   `json:"uid"`
	Flags      []string `json:"flags"`
	Size       int      `json:"size"`
	SHA256     string   `json:"sha256"`
	MessageB64 string   `json:"message_b64"`
}

func (m imapMessage) raw(t *testing.T) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(m.MessageB64)
	if err != nil {
		t.Fatalf("decoding message %d: %v", m.UID, err)
	}
	return string(b)
}

// imapDump is what imap_client.py dump prints.
type imapDump struct {
	UIDValidity   uint32        `json:"uidvalidity"`
	UIDNext       uint32        `json:"uidnext"`
	Exists        int           `json:"exists"`
	Messages      []imapMessage `json:"messages"`
	CapsBeforeTLS []string      `json:"caps_before_tls"`
	CapsAfterTLS  []string      `json:"caps_after_tls"`
}

// imapClient runs testdata/imap_client.py (Python imaplib over STARTTLS) as user and decodes its
// JSON output into result.
func (s *server) imapClient(t *testing.T, user, password string, result any, args ...string) {
	t.Helper()
	python := requireTool(t, "python3")
	host, port := s.hostPort("imap")
	script := filepath.Join(repoRoot, "test", "e2e", "testdata", "imap_client.py")
	all := append([]string{script, host, port, user, password, s.cert.certFile}, args...)
	out, code := runClient(t, python, all...)
	if code != 0 {
		t.Fatalf("imap_client.py %s exited %d; output:\n%s", strings.Join(args, " "), code, out)
	}
	decodeJSON(t, out, result)
}

// decodeJSON decodes the last line a helper script printed.
func decodeJSON(t *testing.T, out string, result any) {
	t.Helper()
	if err := json.Unmarshal([]byte(lastLine(out)), result); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
}

func (s *server) imapDump(t *testing.T, user, password string) imapDump {
	t.Helper()
	var d imapDump
	s.imapClient(t, user, password, &d, "dump")
	return d
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// mbsync syncs user's INBOX from the server's IMAP listener (STARTTLS, certificate checked) into
// the Maildir at dir, pull only, and returns its verbose output with the IMAP protocol trace (-Dn).
func (s *server) mbsync(t *testing.T, user, password, dir string) string {
	t.Helper()
	mbsync := requireTool(t, "mbsync")
	host, port := s.hostPort("imap")
	conf := filepath.Join(t.TempDir(), "mbsyncrc")
	writeFile(t, conf, fmt.Sprintf(`IMAPAccount test
Host %s
Port %s
User %s
Pass %s
SSLType STARTTLS
CertificateFile %s

IMAPStore remote
Account test

MaildirStore local
Path %s/
Inbox %s/INBOX

Channel inbox
Far :remote:
Near :local:
Create Near
Sync Pull
SyncState *
`, host, port, user, password, s.cert.certFile, dir, dir))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, code := runClient(t, mbsync, "-c", conf, "-V", "-Dn", "inbox")
	if code != 0 {
		t.Fatalf("mbsync exited %d; output:\n%s", code, out)
	}
	return out
}
