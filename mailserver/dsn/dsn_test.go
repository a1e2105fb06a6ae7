package dsn

import (
	"strings"
	"testing"
	"time"
)

func TestReadHeaderStopsAtTheBody(t *testing.T) {
	h, err := ReadHeader(strings.NewReader("Subject: hi\r\nFrom: a@b.test\nX-Folded: one\r\n two\r\n\r\nbody line\r\nSubject: not a header\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Subject: hi\r\nFrom: a@b.test\r\nX-Folded: one\r\n two\r\n"; string(h) != want {
		t.Errorf("header %q, want %q", h, want)
	}
	big := strings.Repeat("X-Long: "+strings.Repeat("x", 100)+"\r\n", 1000) + "\r\nbody"
	h, _ = ReadHeader(strings.NewReader(big))
	if len(h) > MaxHeader || !strings.HasSuffix(string(h), "\r\n") {
		t.Errorf("a long header gives %d bytes, cut mid-line: %v", len(h), !strings.HasSuffix(string(h), "\r\n"))
	}
}

func TestBuildFoldsMultiLineReplies(t *testing.T) {
	msg := string(Build(Report{
		ReportingMTA: "mx.a.test", QueueID: "Q1", Sender: "alice@a.test", Now: time.Unix(0, 0),
		Recipients: []Recipient{{Address: "bob@b.test", Action: Failed, Status: "5.7.1",
			Diagnostic: "550 5.7.1 Refused\r\n550 5.7.1 see https://b.test/policy", DiagnosticIsSMTP: true}},
		OriginalHeader: []byte("Subject: x\r\n"),
	}))
	if !strings.Contains(msg, "\r\nDiagnostic-Code: smtp; 550 5.7.1 Refused 550 5.7.1 see https://b.test/policy\r\n") {
		t.Errorf("diagnostic not on one line:\n%s", msg)
	}
	if strings.Contains(strings.ReplaceAll(msg, "\r\n", ""), "\n") {
		t.Error("bare LF in the notice")
	}
}
