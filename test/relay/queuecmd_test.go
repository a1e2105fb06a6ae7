package relay

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// `kubemail queue` against the running server: with B down and the default schedule (the next
// try minutes away), list shows both queued messages, delete removes one without a notice to
// alice, and retry sends the other at once when B is back.
func TestQueueCommand(t *testing.T) {
	w := newWorld(t)
	a := w.server(2, "a.test", "", alice)
	b := w.server(3, "b.test", "", bob)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	queued := func(n int) []string {
		t.Helper()
		var ids []string
		eventually(t, 30*time.Second, fmt.Sprintf("%d messages queued and tried", n), func() error {
			ids = a.QueueIDs()
			if len(ids) != n {
				return fmt.Errorf("queue holds %v", ids)
			}
			if c := strings.Count(a.Logs(), `msg="Attempted delivery"`); c < n {
				return fmt.Errorf("%d attempts logged", c)
			}
			return nil
		})
		return ids
	}
	if err := submit(a, alice, "a.test", "bob@b.test", "Keep", "x"); err != nil {
		t.Fatal(err)
	}
	keep := queued(1)[0]
	if err := submit(a, alice, "a.test", "bob@b.test", "Drop", "x"); err != nil {
		t.Fatal(err)
	}
	ids := queued(2)
	drop := ids[slices.IndexFunc(ids, func(id string) bool { return id != keep })]

	queue := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(kubemailBin, append([]string{"queue"}, append(args, "--data-dir", a.DataDir)...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubemail queue %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	list := queue("list")
	need(t, "kubemail queue list", list, keep, drop, "bob@b.test")

	queue("delete", drop)
	if ids := a.QueueIDs(); len(ids) != 1 || ids[0] != keep {
		t.Fatalf("after delete the queue holds %v, want [%s]", ids, keep)
	}

	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	queue("retry", keep)
	msgs := waitInbox(t, b, bob, "b.test", 1, 30*time.Second)
	need(t, "bob's only message", msgs[0], "Subject: Keep")
	waitQueueEmpty(t, a, 10*time.Second)
	if n := len(maildirFiles(a.Maildir("alice@a.test"))); n != 0 {
		t.Errorf("alice got %d notices; delete sends none and Keep was delivered", n)
	}
	if list := queue("list"); strings.Contains(list, keep) || strings.Contains(list, drop) {
		t.Errorf("kubemail queue list still shows a message:\n%s", list)
	}
}
