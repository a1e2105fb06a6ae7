package relay

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/test/relay/harness"
)

// A is killed with SIGKILL while alice's load is being accepted on its submission port (and
// the queue is delivering to B); after a restart every message that got a 250 arrives at B.
// Duplicates are allowed (a crash between B's 250 and A's record update sends again) but counted.
// RELAY_CRASH_MESSAGES (default 2000) and RELAY_CRASH_SESSIONS (10) size the load.
func TestCrashDuringLoad(t *testing.T) {
	stopDuringLoad(t, "SIGKILL", func(a *harness.Kubemail) error { a.Kill(); return nil })
}

// The same with SIGTERM: a graceful stop under load loses nothing either.
func TestStopDuringLoad(t *testing.T) {
	stopDuringLoad(t, "SIGTERM", (*harness.Kubemail).Stop)
}

func stopDuringLoad(t *testing.T, how string, stop func(*harness.Kubemail) error) {
	w := newWorld(t)
	a := w.server(2, "a.test", "{retry: {initialInterval: 1s, maxInterval: 2s}}", alice)
	b := w.server(3, "b.test", "", bob)
	messages, sessions := envInt("RELAY_CRASH_MESSAGES", 2000), envInt("RELAY_CRASH_SESSIONS", 10)

	load := &harness.Load{Addr: a.Addr("587"), STARTTLS: true, Username: "alice@a.test", Password: alice.Password,
		From: "alice@a.test", To: func(int) string { return "bob@b.test" }, Tag: "crash",
		Messages: messages, Sessions: sessions, Size: 2048}
	done := make(chan *harness.Result, 1)
	go func() { done <- load.Run(time.Now().Add(3 * time.Minute)) }()
	eventually(t, 2*time.Minute, "half the load is accepted", func() error {
		if n := load.Accepted.Load(); n < int64(messages/2) {
			return fmt.Errorf("%d accepted", n)
		}
		return nil
	})
	killedAt := load.Accepted.Load()
	if err := stop(a); err != nil {
		t.Errorf("%s: %v", how, err)
	}
	res := <-done
	queued := len(a.QueueIDs())
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}

	var accepted, inFlight []int
	for i := range messages {
		switch {
		case res.Accepted[i]:
			accepted = append(accepted, i)
		case res.Sent[i]:
			inFlight = append(inFlight, i)
		}
	}
	// Wait until every 250'd message is at B and A's queue is empty.
	var counts map[int]int
	eventually(t, 3*time.Minute, "every accepted message reaches B", func() error {
		counts = deliveredCounts(b.Maildir("bob@b.test"), "crash")
		missing := 0
		for _, i := range accepted {
			if counts[i] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d accepted messages not at B yet", missing, len(accepted))
		}
		if ids := a.QueueIDs(); len(ids) > 0 {
			return fmt.Errorf("%d messages still queued at A", len(ids))
		}
		return nil
	})
	dups, extra, extraDelivered := 0, 0, 0
	for i, n := range counts {
		if n > 1 {
			dups += n - 1
		}
		if !res.Accepted[i] {
			extra++
			extraDelivered += n
		}
	}
	summary := fmt.Sprintf("%s: %d messages, %d sessions; %s after %d 250s; %d accepted in all, %d sent without a reply, "+
		"%d queued after the stop; at B: %d distinct accepted, 0 lost, %d duplicates, %d messages that got no 250 delivered (%d copies)",
		t.Name(), messages, sessions, how, killedAt, len(accepted), len(inFlight), queued, len(accepted), dups, extra, extraDelivered)
	t.Log(summary)
	fmt.Fprintln(os.Stderr, summary)
	if dups > 0 {
		explainDuplicates(t, a, b, counts)
	}
	for i := range counts {
		if !res.Accepted[i] && !res.Sent[i] {
			t.Errorf("message %d arrived at B but was never fully sent", i)
		}
	}
	if len(accepted) < messages/2 {
		t.Errorf("only %d messages accepted", len(accepted))
	}
	if n := len(maildirFiles(a.Maildir("alice@a.test"))); n != 0 {
		t.Errorf("alice got %d notices", n)
	}
}

// explainDuplicates logs, for each duplicated message, B's queue-style ID of each copy (from
// B's Received: header) and whether A logged B's 250 for it: a copy whose 250 A never logged is
// one A's record did not keep (a crash or a cancelled attempt after B had the final dot).
func explainDuplicates(t *testing.T, a, b *harness.Kubemail, counts map[int]int) {
	t.Helper()
	logs := a.Logs()
	shown := 0
	for _, f := range maildirFiles(b.Maildir("bob@b.test")) {
		v, ok := strings.CutPrefix(subjectOf(f), "crash ")
		i, err := strconv.Atoi(v)
		if !ok || err != nil || counts[i] < 2 || shown >= 20 {
			continue
		}
		shown++
		id := receivedID(f, "by mx.b.test")
		t.Logf("duplicate: message %d, copy %s at B: A logged its 250: %v; B: %s", i, id,
			strings.Contains(logs, "queued as "+id+"\""), logLine(b.Logs(), "id="+id+" "))
	}
	if shown > 0 {
		t.Logf("A: %s", logLine(logs, `msg="Shutting down"`))
	}
}

// logLine is the first line of logs that contains s.
func logLine(logs, s string) string {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return "(none)"
}

// receivedID returns the "id" of the Received: header that contains by.
func receivedID(path, by string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	for _, field := range strings.Split(strings.ReplaceAll(head, "\r\n\t", " "), "\r\n") {
		if strings.HasPrefix(field, "Received:") && strings.Contains(field, by) {
			if _, after, ok := strings.Cut(field, " id "); ok {
				return strings.Fields(after)[0]
			}
		}
	}
	return ""
}

// deliveredCounts counts the copies of each load message ("Subject: <tag> <i>") in a Maildir.
func deliveredCounts(maildir, tag string) map[int]int {
	counts := map[int]int{}
	for _, f := range maildirFiles(maildir) {
		if v, ok := strings.CutPrefix(subjectOf(f), tag+" "); ok {
			if i, err := strconv.Atoi(v); err == nil {
				counts[i]++
			}
		}
	}
	return counts
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
