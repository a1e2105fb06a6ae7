package admin_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/admin"
	"github.com/kubemail/kubemail/mailserver/admin/admintest"
	"github.com/kubemail/kubemail/mailserver/queue"
)

func enqueue(t *testing.T, q *queue.Queue, subject string, rcpts ...string) string {
	t.Helper()
	body := "From: <alice@a.test>\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
	id, err := q.Enqueue(context.Background(), "alice@a.test", rcpts, nil, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitAttempts polls the API until message id has had n attempts and none is running.
func waitAttempts(t *testing.T, c *admin.Client, id string, n int) admin.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msgs, err := c.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.ID == id && m.Attempts == n && !m.InFlight {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s never had %d attempts: %+v", id, n, msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestListRetryDelete(t *testing.T) {
	dataDir, q := admintest.StartQueue(t)
	ctx := context.Background()
	c := admin.NewClient(dataDir)
	id := enqueue(t, q, "stuck", "bob@b.test", "carol@b.test")

	m := waitAttempts(t, c, id, 1)
	if m.From != "alice@a.test" || len(m.Rcpts) != 2 {
		t.Fatalf("listed %+v", m)
	}
	for _, r := range m.Rcpts {
		if r.State != queue.Pending || !strings.Contains(r.Reply, "refused") {
			t.Errorf("recipient %s: state %q, reply %q; want pending after a refused connection", r.Addr, r.State, r.Reply)
		}
	}
	if wait := time.Until(m.NextAttempt); wait < 30*time.Minute {
		t.Fatalf("next attempt in %v, want about an hour", wait)
	}

	before, scheduled := time.Now(), m.NextAttempt
	if err := c.Retry(ctx, id); err != nil {
		t.Fatal(err)
	}
	m = waitAttempts(t, c, id, 2)
	if !m.LastAttempt.After(before) || !m.LastAttempt.Before(scheduled) {
		t.Errorf("last attempt %v, want between the retry at %v and the old schedule %v", m.LastAttempt, before, scheduled)
	}
	if m.NextAttempt.Equal(scheduled) {
		t.Errorf("next attempt still %v after the retry", scheduled)
	}
	if time.Until(m.NextAttempt) < 30*time.Minute {
		t.Errorf("next attempt after the retry in %v, want a new backoff", time.Until(m.NextAttempt))
	}

	if err := c.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"queue/msg/" + id, "queue/meta/" + id + ".json"} {
		if _, err := os.Stat(filepath.Join(dataDir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after delete: %v", p, err)
		}
	}
	if msgs, err := c.List(ctx); err != nil || len(msgs) != 0 {
		t.Errorf("after delete: %d messages, %v", len(msgs), err)
	}
	for name, err := range map[string]error{
		"retry":  c.Retry(ctx, id),
		"delete": c.Delete(ctx, id),
	} {
		if !errors.Is(err, admin.ErrNotFound) {
			t.Errorf("%s of a deleted message: %v, want ErrNotFound", name, err)
		}
	}
}

func TestRetryAll(t *testing.T) {
	dataDir, q := admintest.StartQueue(t)
	c := admin.NewClient(dataDir)
	ids := []string{enqueue(t, q, "one", "bob@b.test"), enqueue(t, q, "two", "bob@b.test")}
	for _, id := range ids {
		waitAttempts(t, c, id, 1)
	}
	n, err := c.RetryAll(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("RetryAll: %d, %v; want 2", n, err)
	}
	for _, id := range ids {
		waitAttempts(t, c, id, 2)
	}
}

func TestSocketIsPrivateAndSingle(t *testing.T) {
	dataDir, q := admintest.StartQueue(t)
	fi, err := os.Lstat(admin.SocketPath(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.sock mode %v, want a socket with 0600", fi.Mode())
	}
	if _, err := admin.Listen(dataDir, q, nil); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("a second Listen on a data dir in use: %v", err)
	}
	entries, _ := os.ReadDir(dataDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".a") {
			t.Errorf("left over %s", e.Name())
		}
	}
}

func TestStaleSocketIsReplacedAndRemovedOnClose(t *testing.T) {
	dataDir := t.TempDir()
	// A socket file nobody listens on, as a killed server leaves it.
	ln, err := net.Listen("unix", admin.SocketPath(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	q, err := queue.Open(filepath.Join(dataDir, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.Listen(dataDir, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	if msgs, err := admin.NewClient(dataDir).List(context.Background()); err != nil || len(msgs) != 0 {
		t.Fatalf("List: %v, %v", msgs, err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-served
	if _, err := os.Stat(admin.SocketPath(dataDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Shutdown: %v", err)
	}
	_, err = admin.NewClient(dataDir).List(context.Background())
	if !errors.Is(err, admin.ErrUnreachable) || strings.Contains(err.Error(), "http://") {
		t.Errorf("List without a server: %v, want ErrUnreachable without the URL", err)
	}
}

func TestLongDataDirIsRefusedClearly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := admin.Listen(dir, nil, nil)
	if err == nil || !errors.Is(err, admin.ErrPathTooLong) {
		t.Errorf("Listen in a %d-byte data dir: %v", len(dir), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %d files behind", len(entries))
	}
}
