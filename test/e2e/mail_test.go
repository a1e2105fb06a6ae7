package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	alicePassword = "alice-password"
	bobPassword   = "bob-password"
)

// newSamplesServer starts the binary on a copy of config/samples with an empty data dir.
func newSamplesServer(t *testing.T) *server {
	t.Helper()
	return startServer(t, copySamples(t), t.TempDir(), newTestCert(t))
}

// testBody is a multi-line body unique to one message.
func testBody(tag string) string {
	return fmt.Sprintf("Hello from the e2e test.\nTag: %s\n\nA second paragraph, so the body is more than one line.\n", tag)
}

// messageBody returns the part after the header block, with line ends made LF and the trailing
// empty lines swaks adds after the body removed, plus one final line end.
func messageBody(raw string) string {
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	if i := strings.Index(raw, "\n\n"); i >= 0 {
		return strings.TrimRight(raw[i+2:], "\n") + "\n"
	}
	return ""
}

func headerBlock(raw string) string {
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	if i := strings.Index(raw, "\n\n"); i >= 0 {
		return raw[:i+1]
	}
	return raw
}

func subjectOf(raw string) string {
	for _, line := range strings.Split(headerBlock(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "Subject: "); ok {
			return v
		}
	}
	return ""
}

// A message sent by swaks to a mailbox, to its alias and to a plus-address all land in that one
// INBOX, with a Received: header prepended and the body intact, and IMAP shows them after STARTTLS.
func TestDeliveryReachesInboxThroughAliasAndPlusAddress(t *testing.T) {
	srv := newSamplesServer(t)
	nonce := fmt.Sprint(time.Now().UnixNano())
	sent := map[string]string{} // subject -> body
	for _, to := range []string{"alice@example.test", "postmaster@example.test", "alice+news@example.test", "Alice@Example.Test"} {
		subject := "e2e " + to + " " + nonce
		sent[subject] = testBody(to)
		srv.sendMail(t, to, subject, sent[subject])
	}

	dump := srv.imapDump(t, "alice@example.test", alicePassword)
	if len(dump.Messages) != len(sent) {
		t.Fatalf("alice's INBOX has %d messages, want %d", len(dump.Messages), len(sent))
	}
	for _, m := range dump.Messages {
		raw := m.raw(t)
		subject := subjectOf(raw)
		body, ok := sent[subject]
		if !ok {
			t.Errorf("UID %d: unexpected subject %q", m.UID, subject)
			continue
		}
		delete(sent, subject)
		if got := messageBody(raw); got != body {
			t.Errorf("UID %d (%s): body\n%q\nwant\n%q", m.UID, subject, got, body)
		}
		// RFC 5321 4.4: the receiving server prepends a trace header naming itself.
		if hdr := headerBlock(raw); !strings.Contains(hdr, "Received: ") || !strings.Contains(hdr, "mx.example.test") {
			t.Errorf("UID %d: no Received: header by mx.example.test in\n%s", m.UID, hdr)
		}
		if slices.Contains(m.Flags, `\Seen`) {
			t.Errorf("UID %d: new mail is already \\Seen: %v", m.UID, m.Flags)
		}
	}
	for subject := range sent {
		t.Errorf("message %q did not reach alice's INBOX", subject)
	}

	if bob := srv.imapDump(t, "bob@example.test", bobPassword); bob.Exists != 0 {
		t.Errorf("bob's INBOX has %d messages; all mail was for alice", bob.Exists)
	}
}

// RFC 3501 6.2.3 / 7.2.1: LOGIN is refused on the plain connection and LOGINDISABLED says so;
// STARTTLS is offered and login works after it.
func TestIMAPLoginOnlyAfterSTARTTLS(t *testing.T) {
	srv := newSamplesServer(t)
	var refused struct {
		Refused bool     `json:"refused"`
		Error   string   `json:"error"`
		Caps    []string `json:"caps"`
	}
	srv.imapClient(t, "alice@example.test", alicePassword, &refused, "login-without-tls")
	if !refused.Refused {
		t.Fatalf("LOGIN without TLS succeeded")
	}
	if !slices.Contains(refused.Caps, "LOGINDISABLED") || !slices.Contains(refused.Caps, "STARTTLS") {
		t.Errorf("capabilities before TLS = %v, want LOGINDISABLED and STARTTLS", refused.Caps)
	}
	dump := srv.imapDump(t, "alice@example.test", alicePassword)
	if slices.Contains(dump.CapsAfterTLS, "LOGINDISABLED") {
		t.Errorf("capabilities after STARTTLS still say LOGINDISABLED: %v", dump.CapsAfterTLS)
	}
}

// An unknown local recipient gets 550 5.1.1 and a domain we do not serve 554 5.7.1 (no open
// relay); nothing is delivered.
func TestRecipientRejections(t *testing.T) {
	srv := newSamplesServer(t)
	swaks := requireTool(t, "swaks")
	for _, tc := range []struct{ to, reply string }{
		{"nobody@example.test", "550 5.1.1"},
		{"alice@elsewhere.test", "554 5.7.1"},
	} {
		out, code := runClient(t, swaks, srv.swaksArgs(tc.to)...)
		if code == 0 {
			t.Errorf("swaks to %s succeeded; output:\n%s", tc.to, out)
		}
		// swaks marks an error reply "<**" on a plain connection and "<~*" inside TLS.
		if !regexp.MustCompile(`(?m)^\s*<[*~]\* ` + regexp.QuoteMeta(tc.reply) + ` `).MatchString(out) {
			t.Errorf("swaks to %s: want a %s reply to RCPT; output:\n%s", tc.to, tc.reply, out)
		}
	}
	if dump := srv.imapDump(t, "alice@example.test", alicePassword); dump.Exists != 0 {
		t.Errorf("alice's INBOX has %d messages after rejected mail", dump.Exists)
	}
}

// mbsync pulls the INBOX into a local Maildir with the same bodies and flags; after a server
// restart UIDVALIDITY, UIDs and flags are unchanged, mbsync has nothing new to fetch, and new
// mail continues above the old UIDs.
func TestMbsyncAndRestartKeepUIDsAndFlags(t *testing.T) {
	srv := newSamplesServer(t)
	const user = "alice@example.test"
	sent := map[string]string{}
	var subjects []string
	for i := range 3 {
		subject := fmt.Sprintf("e2e sync %d", i)
		subjects = append(subjects, subject)
		sent[subject] = testBody(subject)
		srv.sendMail(t, user, subject, sent[subject])
	}
	before := srv.imapDump(t, user, alicePassword)
	if len(before.Messages) != 3 {
		t.Fatalf("INBOX has %d messages, want 3", len(before.Messages))
	}
	uidOf := map[string]uint32{}
	for _, m := range before.Messages {
		uidOf[subjectOf(m.raw(t))] = m.UID
	}
	var ok struct{ OK bool }
	srv.imapClient(t, user, alicePassword, &ok, "store", fmt.Sprint(uidOf[subjects[0]]), `\Flagged`)
	srv.imapClient(t, user, alicePassword, &ok, "store", fmt.Sprint(uidOf[subjects[1]]), `\Seen`, `\Answered`)
	wantFlags := map[uint32][]string{
		uidOf[subjects[0]]: {`\Flagged`},
		uidOf[subjects[1]]: {`\Answered`, `\Seen`},
		uidOf[subjects[2]]: {},
	}
	flagged := srv.imapDump(t, user, alicePassword)
	assertFlags(t, "after STORE", flagged, wantFlags)

	local := filepath.Join(t.TempDir(), "mail")
	if first := srv.mbsync(t, user, alicePassword, local); !strings.Contains(first, bodyFetch) {
		t.Errorf("first mbsync: no %q in its protocol trace:\n%s", bodyFetch, first)
	}
	files := maildirFiles(t, filepath.Join(local, "INBOX"))
	if len(files) != 3 {
		t.Fatalf("mbsync wrote %d messages, want 3: %v", len(files), files)
	}
	mbsyncFlags := map[string]string{subjects[0]: "F", subjects[1]: "RS", subjects[2]: ""}
	for name, raw := range files {
		subject := subjectOf(raw)
		if messageBody(raw) != sent[subject] {
			t.Errorf("mbsync copy %s (%q): body %q, want %q", name, subject, messageBody(raw), sent[subject])
		}
		if got := maildirFlags(name); got != mbsyncFlags[subject] {
			t.Errorf("mbsync copy %s (%q): flags %q, want %q", name, subject, got, mbsyncFlags[subject])
		}
	}

	srv.restart()

	after := srv.imapDump(t, user, alicePassword)
	if after.UIDValidity != flagged.UIDValidity {
		t.Errorf("UIDVALIDITY changed across restart: %d -> %d", flagged.UIDValidity, after.UIDValidity)
	}
	if after.UIDNext != flagged.UIDNext {
		t.Errorf("UIDNEXT changed across restart: %d -> %d", flagged.UIDNext, after.UIDNext)
	}
	assertFlags(t, "after restart", after, wantFlags)

	second := srv.mbsync(t, user, alicePassword, local)
	if strings.Contains(second, bodyFetch) {
		t.Errorf("second mbsync after restart fetched message bodies again:\n%s", second)
	}
	again := maildirFiles(t, filepath.Join(local, "INBOX"))
	if !sameKeys(files, again) {
		t.Errorf("second mbsync after restart changed the local Maildir:\nbefore %v\nafter  %v", keys(files), keys(again))
	}

	srv.sendMail(t, user, "e2e after restart", testBody("after restart"))
	newest := srv.imapDump(t, user, alicePassword)
	if len(newest.Messages) != 4 {
		t.Fatalf("INBOX has %d messages after one more delivery, want 4", len(newest.Messages))
	}
	if last := newest.Messages[3]; last.UID < flagged.UIDNext {
		t.Errorf("new message got UID %d, below UIDNEXT %d from before the restart", last.UID, flagged.UIDNext)
	}
	srv.mbsync(t, user, alicePassword, local)
	if n := len(maildirFiles(t, filepath.Join(local, "INBOX"))); n != 4 {
		t.Errorf("third mbsync: local Maildir has %d messages, want 4", n)
	}
}

// bodyFetch is how mbsync asks for a message's content (seen in its -Dn protocol trace).
const bodyFetch = "BODY.PEEK[]"

func assertFlags(t *testing.T, when string, d imapDump, want map[uint32][]string) {
	t.Helper()
	if len(d.Messages) != len(want) {
		t.Fatalf("%s: %d messages, want %d", when, len(d.Messages), len(want))
	}
	for _, m := range d.Messages {
		w, ok := want[m.UID]
		if !ok {
			t.Errorf("%s: unexpected UID %d", when, m.UID)
			continue
		}
		var got []string
		for _, f := range m.Flags {
			if f != `\Recent` {
				got = append(got, f)
			}
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("%s: UID %d flags %v, want %v", when, m.UID, got, w)
		}
	}
}

// maildirFiles reads every message in a Maildir's new/ and cur/, by file name.
func maildirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatalf("reading Maildir: %v", err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files[sub+"/"+e.Name()] = string(b)
		}
	}
	return files
}

// maildirFlags returns the flag letters of a Maildir file name ("…:2,FS").
func maildirFlags(name string) string {
	if i := strings.LastIndex(name, ":2,"); i >= 0 {
		return name[i+3:]
	}
	return ""
}

func keys(m map[string]string) []string {
	var k []string
	for name := range m {
		k = append(k, name)
	}
	sort.Strings(k)
	return k
}

func sameKeys(a, b map[string]string) bool {
	return slices.Equal(keys(a), keys(b))
}
