package server

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/mailserver/admin"
)

func TestAdminSocketAndMetrics(t *testing.T) {
	dataDir := t.TempDir()
	r := startServer(t, copySamples(t), func(o *Options) { o.DataDir = dataDir })
	if msgs, err := admin.NewClient(dataDir).List(context.Background()); err != nil || len(msgs) != 0 {
		t.Fatalf("admin socket: %v, %v", msgs, err)
	}
	if err := imapLogin(r.addrs["imap"], "alice@example.test", "wrong"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	resp, err := http.Get("http://" + r.addrs["health"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "\nkubemail_queue_messages 0\n") ||
		!regexp.MustCompile(`\nkubemail_imap_logins_total\{result="failed"\} [1-9]`).Match(body) {
		t.Errorf("/metrics lacks the queue depth or the failed login:\n%s", body)
	}
}
