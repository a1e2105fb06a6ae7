package smtp

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// needTool returns the path of a real client program. Outside CI a missing one skips the test;
// under CI (CI set) it fails it, since `make test` installs them.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is not installed (apt-get install -y %s)", name, name)
		}
		t.Fatalf("%s is not installed, and CI needs it: %v", name, err)
	}
	return path
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func hostPort(t *testing.T, addr string) (string, string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

func TestSwaksMX(t *testing.T) {
	swaks := needTool(t, "swaks")
	s := startServer(t, false, false)
	host, port := hostPort(t, s.addr)
	base := []string{"--server", host, "--port", port, "--ehlo", "client.test", "--from", "sender@remote.test"}

	out, err := run(t, swaks, append(base, "--to", "alice@example.test", "--tls", "--pipeline",
		"--header", "Subject: from swaks", "--body", "Hello from swaks.")...)
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	got := s.only("alice@example.test")
	if !strings.Contains(got, "Subject: from swaks\r\n") || !strings.Contains(got, "Hello from swaks.") ||
		!strings.Contains(got, " with ESMTPS id ") {
		t.Fatalf("stored:\n%s", got)
	}

	for _, tc := range []struct{ to, reply string }{
		{"someone@elsewhere.test", "554 5.7.1"},
		{"nobody@example.test", "550 5.1.1"},
		{"alice%elsewhere.test@example.test", "554 5.7.1"},
	} {
		out, err = run(t, swaks, append(base, "--to", tc.to)...)
		if err == nil || !strings.Contains(out, "<** "+tc.reply) {
			t.Errorf("swaks to %s: %v, want %s:\n%s", tc.to, err, tc.reply, out)
		}
	}
}

func TestSwaksSubmission(t *testing.T) {
	swaks := needTool(t, "swaks")
	s := startServer(t, true, false)
	host, port := hostPort(t, s.addr)
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		out, err := run(t, swaks, "--server", host, "--port", port, "--tls",
			"--auth", mech, "--auth-user", "alice@example.test", "--auth-password", "alice-password",
			"--from", "alice@example.test", "--to", "bob@example.test", "--header", "Subject: "+mech)
		if err != nil {
			t.Fatalf("swaks --auth %s: %v\n%s", mech, err, out)
		}
	}
	if n := len(s.maildir("bob@example.test")); n != 2 {
		t.Fatalf("bob holds %d messages, want 2", n)
	}
	// Without TLS swaks cannot authenticate, and without AUTH MAIL is refused.
	out, err := run(t, swaks, "--server", host, "--port", port,
		"--from", "alice@example.test", "--to", "bob@example.test")
	if err == nil || !strings.Contains(out, "<** 530 5.7.0") {
		t.Fatalf("swaks without AUTH: %v\n%s", err, out)
	}
}

// pythonSend is a small smtplib client: it sends one message and prints the outcome.
const pythonSend = `
import os, smtplib, ssl, sys
from email.message import EmailMessage
from email import policy
e = os.environ
ctx = ssl.create_default_context(cafile=e["CA"])
msg = EmailMessage(policy=policy.SMTPUTF8)
msg["From"] = e["FROM"]
msg["To"] = e["TO"]
msg["Subject"] = e["SUBJECT"]
msg.set_content(e["BODY"])
if e["MODE"] == "ssl":
    s = smtplib.SMTP_SSL(e["HOST"], int(e["PORT"]), context=ctx)
else:
    s = smtplib.SMTP(e["HOST"], int(e["PORT"]))
    s.starttls(context=ctx)
if e.get("USER"):
    s.login(e["USER"], e["PASSWORD"])
try:
    s.send_message(msg)
    print("sent")
except smtplib.SMTPRecipientsRefused as err:
    for rcpt, (code, text) in err.recipients.items():
        print("refused", rcpt, code, text.decode())
s.quit()
`

func runPython(t *testing.T, s *testServer, env map[string]string) string {
	t.Helper()
	python := needTool(t, "python3")
	host, port := hostPort(t, s.addr)
	cmd := exec.Command(python, "-c", pythonSend)
	cmd.Env = append(os.Environ(), "CA="+s.caFile(), "HOST="+host, "PORT="+port, "PYTHONIOENCODING=utf-8")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python smtplib: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestPythonSmtplibMX(t *testing.T) {
	s := startServer(t, false, false)
	// A UTF-8 sender makes smtplib use SMTPUTF8 and send the UTF-8 header as it is (RFC 6532).
	out := runPython(t, s, map[string]string{"MODE": "starttls", "FROM": "Jörg <jörg@bücher.test>",
		"TO": "alice@example.test", "SUBJECT": "Grüße aus Köln", "BODY": "Schöne Grüße!"})
	if out != "sent" {
		t.Fatalf("smtplib: %s", out)
	}
	got := s.only("alice@example.test")
	if !strings.Contains(got, "Subject: Grüße aus Köln\r\n") || !strings.Contains(got, " with UTF8SMTPS id ") {
		t.Fatalf("stored:\n%s", got)
	}
	s.waitLog("Accepted message", "from=jörg@bücher.test")
}

func TestPythonSmtplibSubmission(t *testing.T) {
	s := startServer(t, true, true)
	out := runPython(t, s, map[string]string{"MODE": "ssl", "USER": "bob@example.test", "PASSWORD": "bob-password",
		"FROM": "bob@example.test", "TO": "alice@example.test, friend@elsewhere.test", "SUBJECT": "hi", "BODY": "hello"})
	// smtplib sends if any recipient is accepted; the refused one is reported back.
	if out != "sent" {
		t.Fatalf("smtplib: %s", out)
	}
	s.only("alice@example.test")
	s.waitLog("Rejected recipient", "rcpt=friend@elsewhere.test", "code=554")
	out = runPython(t, s, map[string]string{"MODE": "ssl", "USER": "bob@example.test", "PASSWORD": "bob-password",
		"FROM": "bob@example.test", "TO": "friend@elsewhere.test", "SUBJECT": "hi", "BODY": "hello"})
	if !strings.HasPrefix(out, "refused friend@elsewhere.test 554 5.7.1 Outbound delivery is not enabled") {
		t.Fatalf("smtplib: %s", out)
	}
}
