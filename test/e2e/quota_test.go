package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

const (
	carol, carolPassword = "carol@example.test", "carol-password"
	carolQuota           = 64 << 10 // the manifest's 64Ki
)

// carolManifest adds to the samples a mailbox with a 64Ki quota.
const carolManifest = `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol-example-test}
spec:
  address: carol@example.test
  passwordSecretRef: {name: carol-pw, key: password}
  quota: 64Ki
---
apiVersion: v1
kind: Secret
metadata: {name: carol-pw}
stringData: {password: carol-password}
`

// swaksTry sends one message with swaks through the MX and reports whether it was accepted,
// with swaks's transcript.
func (s *server) swaksTry(t *testing.T, to, subject, body string) (bool, string) {
	t.Helper()
	swaks := requireTool(t, "swaks")
	bodyFile := filepath.Join(t.TempDir(), "body.txt")
	writeFile(t, bodyFile, body)
	out, code := runClient(t, swaks, append(s.swaksArgs(to), "--header", "Subject: "+subject, "--body", "@"+bodyFile)...)
	// swaks marks replies "<-" in plain text and "<~" under TLS.
	return code == 0 && strings.Contains(out, "  250 2.0.0 OK: queued as"), out
}

type quotaUsage struct {
	Bytes    int `json:"bytes"`
	Messages int `json:"messages"`
}

// quotaIMAP runs testdata/quota_imap.py as carol and decodes its JSON into result.
func (s *server) quotaIMAP(t *testing.T, result any, args ...string) {
	t.Helper()
	python := requireTool(t, "python3")
	host, port := s.hostPort("imap")
	script := filepath.Join(repoRoot, "test", "e2e", "testdata", "quota_imap.py")
	out, code := runClient(t, python, append([]string{script, host, port, carol, carolPassword, s.cert.certFile}, args...)...)
	if code != 0 {
		t.Fatalf("quota_imap.py %s exited %d; output:\n%s", strings.Join(args, " "), code, out)
	}
	decodeJSON(t, out, result)
}

func (s *server) carolUsage(t *testing.T) quotaUsage {
	t.Helper()
	var u quotaUsage
	s.quotaIMAP(t, &u, "usage")
	return u
}

// A mailbox with a 64Ki quota takes mail until the next message would not fit, then senders get
// 452 4.2.2 (swaks at the end of DATA, smtplib, which declares SIZE=, at RCPT) and IMAP APPEND
// gets NO [OVERQUOTA]; a restart keeps the count right both ways; once the user deletes mail over
// IMAP, delivery works again.
func TestQuotaFullMailboxAndMakingRoom(t *testing.T) {
	manifests := copySamples(t)
	writeFile(t, filepath.Join(manifests, "carol.yaml"), carolManifest)
	srv := startServer(t, manifests, t.TempDir(), newTestCert(t))
	big := strings.Repeat(strings.Repeat("q", 74)+"\n", 200) // 15000 bytes

	accepted := 0
	for i := 1; ; i++ {
		ok, out := srv.swaksTry(t, carol, "big "+string(rune('0'+i)), big)
		if ok {
			accepted++
			continue
		}
		if !strings.Contains(out, " 452 4.2.2 Mailbox full") {
			t.Fatalf("message %d refused, but not with 452 4.2.2 Mailbox full:\n%s", i, out)
		}
		break
	}
	u := srv.carolUsage(t)
	if accepted < 3 || u.Messages != accepted || u.Bytes > carolQuota || u.Bytes+len(big) <= carolQuota {
		t.Fatalf("%d messages accepted; IMAP shows %d messages, %d bytes: want at least 3, all of them, "+
			"within %d bytes, with no room for another %d", accepted, u.Messages, u.Bytes, carolQuota, len(big))
	}

	r := srv.smtpSend(t, carol, []byte("From: sender@remote.test\r\nTo: carol@example.test\r\nSubject: sized\r\n\r\n"+
		strings.ReplaceAll(big, "\n", "\r\n")), false)
	if r.OK || r.Code != 452 || !strings.Contains(r.Error, "4.2.2") {
		t.Errorf("smtplib (SIZE=): ok=%v %d %q, want 452 4.2.2", r.OK, r.Code, r.Error)
	}

	draft := filepath.Join(t.TempDir(), "draft.eml")
	writeFile(t, draft, "From: carol@example.test\r\nSubject: draft\r\n\r\n"+strings.ReplaceAll(big, "\n", "\r\n"))
	var app struct {
		OK       bool   `json:"ok"`
		Response string `json:"response"`
	}
	srv.quotaIMAP(t, &app, "append", "Drafts", draft)
	if app.OK || !strings.Contains(app.Response, "[OVERQUOTA]") {
		t.Errorf("IMAP APPEND past the quota: %+v, want NO [OVERQUOTA]", app)
	}
	if got := srv.carolUsage(t); got != u {
		t.Errorf("after the refusals IMAP shows %+v, want %+v: something refused was stored", got, u)
	}

	// After a restart the count is made again from the Maildir: neither lost (a big message is
	// still refused) nor doubled (a small one still fits in the room left).
	if room := carolQuota - u.Bytes; room < 1500 {
		t.Fatalf("only %d bytes of room left; the test needs a little more", room)
	}
	srv.restart()
	if ok, out := srv.swaksTry(t, carol, "big after restart", big); ok || !strings.Contains(out, "452 4.2.2") {
		t.Errorf("after a restart a big message was not refused with 452 4.2.2:\n%s", out)
	}
	if ok, out := srv.swaksTry(t, carol, "small after restart", "fits\n"); !ok {
		t.Errorf("after a restart a small message that fits the room left was refused:\n%s", out)
	}

	var exp struct {
		Expunged int `json:"expunged"`
	}
	srv.quotaIMAP(t, &exp, "expunge-all", "INBOX")
	if exp.Expunged != accepted+1 {
		t.Errorf("EXPUNGE removed %d messages, want %d", exp.Expunged, accepted+1)
	}
	if ok, out := srv.swaksTry(t, carol, "big after cleaning up", big); !ok {
		t.Errorf("after the user deleted mail, delivery still refused:\n%s", out)
	}
	if got := srv.carolUsage(t); got.Messages != 1 {
		t.Errorf("IMAP shows %+v, want the one message sent after cleaning up", got)
	}
}
