package config

import (
	"strings"
	"testing"
	"time"
)

func autoReplyMailbox(block string) string {
	return `apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: example-test}
spec: {domain: example.test}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: alice}
spec:
  address: alice@example.test
  passwordSecretRef: {name: alice-pw, key: password}
  autoReply:
` + block + `---
apiVersion: v1
kind: Secret
metadata: {name: alice-pw}
stringData: {password: secret}
`
}

// spec.autoReply reaches the runtime config with its defaults; the window is [start, end).
func TestAutoReplyResolved(t *testing.T) {
	cfg, err := LoadManifests(writeManifest(t, autoReplyMailbox(`
    body: "I am away."
    start: "2026-11-27T00:00:00Z"
    end: "2026-12-02T00:00:00+01:00"
`)), plainHasher)
	if err != nil {
		t.Fatal(err)
	}
	ar := cfg.Mailboxes[0].AutoReply
	if ar == nil || ar.Body != "I am away." || ar.Subject != "" || ar.Interval != 7*24*time.Hour {
		t.Fatalf("AutoReply = %+v", ar)
	}
	start := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	end := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	if !ar.Start.Equal(start) || !ar.End.Equal(end) {
		t.Errorf("window %s..%s, want %s..%s", ar.Start, ar.End, start, end)
	}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{{start.Add(-time.Second), false}, {start, true}, {end.Add(-time.Second), true}, {end, false}} {
		if got := ar.Active(tc.at); got != tc.want {
			t.Errorf("Active(%s) = %v, want %v", tc.at, got, tc.want)
		}
	}
	cfg, err = LoadManifests(writeManifest(t, autoReplyMailbox("    body: away\n    subject: Out of office\n    interval: 24h\n")), plainHasher)
	if err != nil {
		t.Fatal(err)
	}
	if ar := cfg.Mailboxes[0].AutoReply; ar.Interval != 24*time.Hour || ar.Subject != "Out of office" || !ar.Active(time.Now()) {
		t.Errorf("AutoReply = %+v", ar)
	}
}

// A bad autoReply stops loading with an error naming the Mailbox and the field.
func TestAutoReplyErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, block, want string
	}{
		{"end before start", "    body: away\n    start: \"2026-12-02T00:00:00Z\"\n    end: \"2026-11-27T00:00:00Z\"\n",
			`Mailbox "default/alice": spec.autoReply.end: 2026-11-27T00:00:00Z is not after spec.autoReply.start`},
		{"end equals start", "    body: away\n    start: \"2026-12-02T00:00:00Z\"\n    end: \"2026-12-02T00:00:00Z\"\n",
			"spec.autoReply.end"},
		{"interval too short", "    body: away\n    interval: 1h\n",
			`Mailbox "default/alice": spec.autoReply.interval: 1h0m0s is shorter than the minimum 24h0m0s`},
		{"empty body", "    body: \"  \"\n", "spec.autoReply.body: must not be empty"},
		{"body too long", "    body: " + strings.Repeat("x", MaxAutoReplyBody+1) + "\n", "spec.autoReply.body: is longer than 10240"},
		{"two-line subject", "    body: away\n    subject: \"a\\r\\nBcc: x@example.net\"\n", "spec.autoReply.subject: must be one line"},
		// A value the decoder cannot parse is named by its field too (see decodeerr.go).
		{"bad time", "    body: away\n    start: tomorrow\n", `Mailbox "default/alice": spec.autoReply.start: invalid value "tomorrow": parsing time "tomorrow"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadManifests(writeManifest(t, autoReplyMailbox(tc.block)), plainHasher)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
