package autoreply_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A message to alice gets one reply, made as RFC 3834 asks; the same sender gets no second one
// within the interval, not even after a restart; after the interval, one again.
func TestReplyOncePerSenderPerInterval(t *testing.T) {
	s := newSetup(t, awayBlock)
	sent, already := counted("sent"), counted("suppressed_already_replied")
	s.deliver("carol@remote.test", message("References: <m0@remote.test>\r\n"))
	rs := s.replies(t)
	if len(rs) != 1 {
		t.Fatalf("%d replies, want 1", len(rs))
	}
	r := rs[0]
	if r.from != "" || !reflect.DeepEqual(r.rcpts, []string{"carol@remote.test"}) {
		t.Errorf("envelope from %q to %v, want <> to carol@remote.test", r.from, r.rcpts)
	}
	for field, want := range map[string]string{
		"From": "<alice@example.test>", "To": "<carol@remote.test>", "Auto-Submitted": "auto-replied",
		"In-Reply-To": "<m1@remote.test>", "References": "<m0@remote.test> <m1@remote.test>",
		"Content-Type": "text/plain; charset=utf-8",
	} {
		if got := r.header.Get(field); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	if got := r.subject(t); got != "Auto: Lunch?" {
		t.Errorf("Subject %q", got)
	}
	if id := r.header.Get("Message-Id"); !strings.HasSuffix(id, "@mx.example.test>") {
		t.Errorf("Message-ID %q", id)
	}
	if d, err := r.header.Date(); err != nil || !d.Equal(inWindow) {
		t.Errorf("Date %v, %v", d, err)
	}
	if want := "I am away until 2 December.\r\nFor urgent matters write to bob@example.test.\r\n"; r.body != want {
		t.Errorf("body %q, want %q", r.body, want)
	}
	if counted("sent") != sent+1 {
		t.Error("kubemail_autoreplies_total{result=sent} not counted")
	}

	// The same sender again, under another spelling, by alias: nothing more.
	s.clock.Set(inWindow.Add(time.Hour))
	s.deliver("Carol@Remote.TEST", strings.Replace(message(""), "alice@", "a.smith@", 1))
	s.restart()
	s.deliver("carol@remote.test", message(""))
	if n := len(s.replies(t)); n != 1 {
		t.Fatalf("%d replies after two more messages from carol, want still 1", n)
	}
	if counted("suppressed_already_replied") != already+2 {
		t.Errorf("already_replied counted %v times, want 2", counted("suppressed_already_replied")-already)
	}
	// Another sender is answered.
	s.deliver("dave@remote.test", strings.Replace(message(""), "carol@", "dave@", 1))
	if n := len(s.replies(t)); n != 2 {
		t.Fatalf("%d replies after dave's message, want 2", n)
	}
	// 7 days (the default interval) later, carol is answered again, and the memory has
	// forgotten the old entries it no longer needs.
	s.clock.Set(inWindow.Add(7*24*time.Hour + 2*time.Hour))
	s.setEnd(t, "2026-12-31T00:00:00Z")
	s.deliver("carol@remote.test", message(""))
	if n := len(s.replies(t)); n != 3 {
		t.Fatalf("%d replies after the interval, want 3", n)
	}
	data, err := os.ReadFile(filepath.Join(s.dataDir, "alice@example.test.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "dave") || !strings.Contains(string(data), "carol@remote.test") {
		t.Errorf("memory after the interval: %s", data)
	}
}

// setEnd moves the window's end, keeping the body (and so the memory).
func (s *setup) setEnd(t *testing.T, end string) {
	t.Helper()
	setConfig(t, s.live, strings.Replace(awayBlock, "2026-12-02T00:00:00Z", end, 1))
}

// A changed reply is a new one: senders already answered get it (RFC 5230 4.2).
func TestChangedReplyAnswersAgain(t *testing.T) {
	s := newSetup(t, awayBlock)
	s.deliver("carol@remote.test", message(""))
	setConfig(t, s.live, strings.Replace(awayBlock, "2 December", "3 December", 1)+"    subject: Out of office\n")
	s.deliver("carol@remote.test", message(""))
	rs := s.replies(t)
	if len(rs) != 2 {
		t.Fatalf("%d replies, want 2", len(rs))
	}
	if got := rs[1].subject(t); got != "Out of office" || !strings.Contains(rs[1].body, "3 December") {
		t.Errorf("second reply %q: %q", got, rs[1].body)
	}
}

// Mail that must not be answered is not, and the metric says why; plain mail next to each case
// is answered, so each case fails for its own reason.
func TestSuppressed(t *testing.T) {
	for _, tc := range []struct {
		name, from, msg, reason string
		at                      time.Time
	}{
		{"List-Id", "carol@remote.test", message("List-Id: <lunch.remote.test>\r\n"), "list", inWindow},
		{"List-Unsubscribe", "carol@remote.test", message("List-Unsubscribe: <mailto:x@remote.test>\r\n"), "list", inWindow},
		{"List-Post", "carol@remote.test", message("List-Post: <mailto:l@remote.test>\r\n"), "list", inWindow},
		{"Precedence bulk", "carol@remote.test", message("Precedence: bulk\r\n"), "precedence", inWindow},
		{"Precedence list", "carol@remote.test", message("Precedence: List\r\n"), "precedence", inWindow},
		{"Precedence junk", "carol@remote.test", message("Precedence: junk\r\n"), "precedence", inWindow},
		{"Auto-Submitted auto-generated", "carol@remote.test", message("Auto-Submitted: auto-generated\r\n"), "auto_submitted", inWindow},
		{"Auto-Submitted auto-replied", "carol@remote.test", message("Auto-Submitted: auto-replied (vacation)\r\n"), "auto_submitted", inWindow},
		{"X-Auto-Response-Suppress", "carol@remote.test", message("X-Auto-Response-Suppress: DR, OOF\r\n"), "auto_submitted", inWindow},
		{"null sender", "", message(""), "null_sender", inWindow},
		{"MAILER-DAEMON", "MAILER-DAEMON@remote.test", message(""), "system_sender", inWindow},
		{"owner-", "owner-lunch@remote.test", message(""), "system_sender", inWindow},
		{"-request", "lunch-request@remote.test", message(""), "system_sender", inWindow},
		{"-bounces", "lunch-bounces+alice=example.test@remote.test", message(""), "system_sender", inWindow},
		{"noreply", "no-reply@shop.test", message(""), "system_sender", inWindow},
		{"group bounce address", "team+bounces@example.test", message(""), "system_sender", inWindow},
		{"own address", "alice@example.test", message(""), "own_address", inWindow},
		{"own alias", "a.smith+x@example.test", message(""), "own_address", inWindow},
		{"only in Bcc", "carol@remote.test", strings.Replace(message(""), "To: Alice <alice@example.test>", "To: Bob <bob@example.test>", 1), "not_addressed", inWindow},
		{"no To at all", "carol@remote.test", strings.Replace(message(""), "To: Alice <alice@example.test>\r\n", "", 1), "not_addressed", inWindow},
		{"before start", "carol@remote.test", message(""), "outside_window", time.Date(2026, 11, 26, 23, 59, 59, 0, time.UTC)},
		{"at end", "carol@remote.test", message(""), "outside_window", time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, awayBlock)
			s.clock.Set(tc.at)
			before := counted("suppressed_" + tc.reason)
			s.deliver(tc.from, tc.msg)
			if rs := s.replies(t); len(rs) != 0 {
				t.Fatalf("replied:\n%s", rs[0].raw)
			}
			if got := counted("suppressed_"+tc.reason) - before; got != 1 {
				t.Errorf("suppressed_%s counted %v times, want 1", tc.reason, got)
			}
			// The control: an ordinary message from an ordinary sender, in the window.
			s.clock.Set(inWindow)
			s.deliver("erin@remote.test", strings.Replace(message(""), "carol@", "erin@", 1))
			if n := len(s.replies(t)); n != 1 {
				t.Errorf("the control message got %d replies, want 1", n)
			}
		})
	}
}

// Cc counts, as do an alias and a plus-address; Auto-Submitted: no is a person's mail.
func TestAddressedInCc(t *testing.T) {
	for _, msg := range []string{
		strings.Replace(message(""), "To: Alice <alice@example.test>", "To: bob@example.test\r\nCc: \"Smith, A.\" <a.smith@example.test>", 1),
		strings.Replace(message("Auto-Submitted: no\r\n"), "alice@example.test", "ALICE+lunch@example.test", 1),
		strings.Replace(message(""), "To: Alice <alice@example.test>", "To: undisclosed-recipients:;\r\nCc: <alice@example.test>", 1),
	} {
		s := newSetup(t, awayBlock)
		s.deliver("carol@remote.test", msg)
		if n := len(s.replies(t)); n != 1 {
			t.Errorf("%d replies to\n%s", n, msg)
		}
	}
}

// A mailbox without autoReply, and a reload that adds one: replies start with the reload.
func TestReloadAddsAutoReply(t *testing.T) {
	s := newSetup(t, "")
	s.deliver("carol@remote.test", message(""))
	if n := len(s.replies(t)); n != 0 {
		t.Fatalf("%d replies without autoReply", n)
	}
	setConfig(t, s.live, awayBlock)
	s.deliver("carol@remote.test", message(""))
	if n := len(s.replies(t)); n != 1 {
		t.Fatalf("%d replies after the reload, want 1", n)
	}
}

// Non-ASCII text survives: the default subject decodes the original's encoded words, and the
// body is UTF-8; nothing from the original's header adds a field to the reply.
func TestReplyText(t *testing.T) {
	s := newSetup(t, `  autoReply:
    body: "Je suis absente jusqu'au 2 décembre. Ὕαλον ϕαγεῖν δύναμαι."
`)
	s.deliver("carol@remote.test", strings.Replace(message(""), "Subject: Lunch?",
		"Subject: =?utf-8?q?D=C3=A9jeuner?=", 1))
	rs := s.replies(t)
	if len(rs) != 1 {
		t.Fatalf("%d replies", len(rs))
	}
	if got := rs[0].subject(t); got != "Auto: Déjeuner" {
		t.Errorf("Subject %q", got)
	}
	if !strings.Contains(rs[0].body, "2 décembre. Ὕαλον") {
		t.Errorf("body %q", rs[0].body)
	}
	for _, line := range strings.Split(rs[0].raw, "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d octets", len(line))
		}
		for _, c := range []byte(line) {
			if c >= 0x80 {
				t.Fatalf("8-bit octet in the reply: %q", line)
			}
		}
	}
}
