// Package admintest starts what `kubemail queue` talks to, for the tests of the admin endpoint
// and of the command: a real queue in a temporary data dir with its admin socket.
package admintest

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/admin"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
	"github.com/kubemail/kubemail/mailserver/queue"
)

// StartQueue runs a real queue in a temp data dir whose mail for b.test goes to an MX that
// refuses connections (so it stays queued, retried in an hour), and its admin endpoint on
// <data>/admin.sock; both stop when the test ends.
func StartQueue(t *testing.T) (dataDir string, q *queue.Queue) {
	t.Helper()
	dataDir = t.TempDir()
	dns := dnstest.Start(t)
	dns.SetMX("b.test", &net.MX{Host: "mx.b.test", Pref: 10})
	dns.SetA("mx.b.test", "127.0.0.1")
	cl := delivery.New(delivery.Options{Hostname: "mx.a.test", Resolver: delivery.NewResolver(dns.Addr), MXPort: deliverytest.FreePort(t, "127.0.0.1"),
		Timeouts: delivery.Timeouts{Connect: 2 * time.Second}})
	t.Cleanup(cl.Close)
	q, err := queue.Open(filepath.Join(dataDir, "queue"), queue.Options{Hostname: "mx.a.test", Transport: cl,
		Retry: queue.RetryPolicy{InitialInterval: time.Hour, Lifetime: 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); q.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	srv, err := admin.Listen(dataDir, q, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	return dataDir, q
}
