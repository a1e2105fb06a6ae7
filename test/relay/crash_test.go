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
	a.Kill()
	killedAt := load.Accepted.Load()
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
	summary := fmt.Sprintf("crash: %d messages, %d sessions; SIGKILL after %d 250s; %d accepted in all, %d sent without a reply, "+
		"%d queued at the kill; at B: %d distinct accepted, 0 lost, %d duplicates, %d messages that got no 250 delivered (%d copies)",
		messages, sessions, killedAt, len(accepted), len(inFlight), queued, len(accepted), dups, extra, extraDelivered)
	t.Log(summary)
	fmt.Fprintln(os.Stderr, summary)
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
