package server

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/delivery/deliverytest"
	"github.com/kubemail/kubemail/mailserver/store/storetest"
)

// routedSetup is a server with its own DNS server and data dir whose mail for one outside
// domain goes, by a RelayPolicy route, to a real kubemail MX (remote).
type routedSetup struct {
	manifests, data string
	dns             *dnstest.Server
	remote          *deliverytest.Server
	srv             *running
}

// newRouted starts the DNS server and the MX of domain with users' mailboxes, and writes the
// route to it; the caller writes the rest of the manifests and calls start.
func newRouted(t *testing.T, domain string, users ...string) *routedSetup {
	t.Helper()
	r := &routedSetup{manifests: t.TempDir(), data: t.TempDir(), dns: dnstest.Start(t)}
	r.remote = deliverytest.StartMX(t, "mx."+domain, "127.0.0.1", 0, deliverytest.Mailboxes(t, domain, users...))
	host, port, _ := net.SplitHostPort(r.remote.Addr)
	name, _, _ := strings.Cut(domain, ".")
	r.write(t, "route.yaml", fmt.Sprintf(`apiVersion: mail.kubemail.io/v1alpha1
kind: RelayPolicy
metadata: {name: to-%s}
spec:
  routes: [{domains: [%s], host: %q, port: %s}]
`, name, domain, host, port))
	return r
}

func (r *routedSetup) write(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.manifests, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (r *routedSetup) start(t *testing.T) {
	r.srv = startServer(t, r.manifests, func(o *Options) { o.DNSResolver = r.dns.Addr; o.DataDir = r.data })
}

// restart stops the server and starts it again on the same data dir.
func (r *routedSetup) restart(t *testing.T) {
	t.Helper()
	r.srv.stop()
	err := <-r.srv.done
	r.srv.done <- err // for startServer's cleanup
	if err != nil {
		t.Fatalf("server stopped with %v", err)
	}
	r.start(t)
}

// waitLog polls the server's log for a line with every one of parts.
func (r *routedSetup) waitLog(t *testing.T, parts ...string) {
	t.Helper()
	eventually(t, "log line with "+strings.Join(parts, " "), func() error {
		if !containsLine(r.srv.log.String(), parts...) {
			return fmt.Errorf("not logged")
		}
		return nil
	})
}

func containsLine(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		if containsAll(line, parts) {
			return true
		}
	}
	return false
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// inbox returns the messages in the INBOX of a local mailbox.
func (r *routedSetup) inbox(t *testing.T, addr string) []string {
	t.Helper()
	local, domain, _ := strings.Cut(addr, "@")
	var out []string
	for _, m := range storetest.Inbox(t, filepath.Join(r.data, "mail", domain, local)) {
		out = append(out, m.Data)
	}
	return out
}

// waitInbox polls a local mailbox's INBOX until it has n messages or more, and returns them.
func (r *routedSetup) waitInbox(t *testing.T, addr string, n int) []string {
	t.Helper()
	var msgs []string
	eventually(t, addr+" has its copies", func() error {
		if msgs = r.inbox(t, addr); len(msgs) < n {
			return fmt.Errorf("%d messages, want %d", len(msgs), n)
		}
		return nil
	})
	return msgs
}
