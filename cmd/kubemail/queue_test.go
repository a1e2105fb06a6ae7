package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/admin/admintest"
	"github.com/kubemail/kubemail/mailserver/queue"
)

// kubemailQueue runs `kubemail queue args...` and returns its exit status and output.
func kubemailQueue(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := queueMain(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func waitFirstAttempts(t *testing.T, q *queue.Queue, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := q.List()
		ok := len(l) > 0
		for _, m := range l {
			ok = ok && m.Attempts >= n && !m.InFlight
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for attempt %d of every message: %+v", n, l)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestQueueCommand(t *testing.T) {
	dataDir, q := admintest.StartQueue(t)
	id, err := q.Enqueue(context.Background(), "alice@a.test", []string{"bob@b.test", "carol@b.test"}, nil,
		strings.NewReader("Subject: stuck\r\n\r\nHello.\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	waitFirstAttempts(t, q, 1)

	code, out, errOut := kubemailQueue("list", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	t.Logf("kubemail queue list:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("list printed %d lines, want a heading, two recipients and a total", len(lines))
	}
	for _, f := range []string{"ID", "AGE", "NEXT ATTEMPT", "SENDER", "RECIPIENT", "STATE", "LAST REPLY"} {
		if !strings.Contains(lines[0], f) {
			t.Errorf("heading lacks %s: %q", f, lines[0])
		}
	}
	first := strings.Fields(lines[1])
	// The retry policy's first retry is an hour less up to a quarter of jitter.
	if first[0] != id || first[2] != "in" || !regexp.MustCompile(`^(4[4-9]|5[0-9])m[0-9]{2}s$|^1h00m$`).MatchString(first[3]) ||
		first[4] != "alice@a.test" || first[5] != "bob@b.test" || first[6] != "pending" || !strings.Contains(lines[1], "refused") {
		t.Errorf("first row %q: want ID, age, next attempt within the hour, sender, bob pending, refused", lines[1])
	}
	if second := strings.Fields(lines[2]); second[0] != "carol@b.test" || second[1] != "pending" {
		t.Errorf("second row %q: want only carol's recipient columns", lines[2])
	}
	// The recipient columns line up under the heading.
	if col := strings.Index(lines[0], "RECIPIENT"); strings.Index(lines[1], "bob@") != col || strings.Index(lines[2], "carol@") != col {
		t.Errorf("recipient column misaligned:\n%s", out)
	}
	if lines[3] != "1 message, 2 recipients pending." {
		t.Errorf("total line %q", lines[3])
	}

	// retry ID: a second attempt follows at once instead of in an hour.
	if code, out, errOut := kubemailQueue("--data-dir", dataDir, "retry", id); code != 0 || !strings.Contains(out, "Scheduled "+id) {
		t.Fatalf("retry: exit %d: %s%s", code, out, errOut)
	}
	waitFirstAttempts(t, q, 2)
	if next := time.Until(q.List()[0].NextAttempt); next < 20*time.Minute {
		t.Errorf("next attempt in %v after the retry, want a fresh backoff", next)
	}
	if code, out, _ := kubemailQueue("retry", "--all", "--data-dir", dataDir); code != 0 || out != "Scheduled 1 message for delivery now.\n" {
		t.Errorf("retry --all: exit %d: %q", code, out)
	}
	waitFirstAttempts(t, q, 3)

	// delete ID: gone from disk and from the list.
	if code, out, errOut := kubemailQueue("delete", id, "--data-dir", dataDir); code != 0 || out != "Deleted "+id+".\n" {
		t.Fatalf("delete: exit %d: %q %s", code, out, errOut)
	}
	for _, p := range []string{"queue/msg/" + id, "queue/meta/" + id + ".json"} {
		if _, err := os.Stat(filepath.Join(dataDir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after delete: %v", p, err)
		}
	}
	if code, out, _ := kubemailQueue("list", "--data-dir", dataDir); code != 0 || out != "The queue is empty.\n" {
		t.Errorf("list after delete: exit %d: %q", code, out)
	}
	if code, _, errOut := kubemailQueue("delete", id, "--data-dir", dataDir); code != 1 || !strings.Contains(errOut, "no message "+id+" in the queue") {
		t.Errorf("delete again: exit %d: %q", code, errOut)
	}
}

func TestQueueCommandJSON(t *testing.T) {
	dataDir, q := admintest.StartQueue(t)
	id, err := q.Enqueue(context.Background(), "", []string{"bob@b.test"}, nil, strings.NewReader("Subject: notice\r\n\r\n.\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	waitFirstAttempts(t, q, 1)
	code, out, _ := kubemailQueue("list", "--json", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, `"id": "`+id+`"`) || !strings.Contains(out, `"state": "pending"`) || !strings.Contains(out, `"from": ""`) {
		t.Errorf("list --json: exit %d:\n%s", code, out)
	}
	code, out, _ = kubemailQueue("list", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, " <> ") {
		t.Errorf("the null sender should show as <>:\n%s", out)
	}
}

func TestQueueCommandWithoutServer(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := kubemailQueue("list", "--data-dir", dir)
	if code != 1 || !strings.Contains(errOut, filepath.Join(dir, "admin.sock")) || !strings.Contains(errOut, "kubemail server --data-dir "+dir) {
		t.Errorf("list without a server: exit %d: %s", code, errOut)
	}
}

func TestQueueCommandUsage(t *testing.T) {
	code, _, errOut := kubemailQueue("--help")
	if code != 0 || !strings.Contains(errOut, "admin.sock") || !strings.Contains(errOut, "0600") || !strings.Contains(errOut, "kubectl exec") {
		t.Errorf("--help: exit %d, should explain the socket:\n%s", code, errOut)
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"retry"}, {"retry", "X", "--all"}, {"delete"}, {"list", "X"}} {
		if code, _, _ := kubemailQueue(args...); code != 2 {
			t.Errorf("kubemail queue %q: exit %d, want 2", args, code)
		}
	}
}
