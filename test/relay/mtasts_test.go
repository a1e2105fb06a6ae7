package relay

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/test/relay/harness"
)

// b.test publishes an MTA-STS policy in mode enforce (TXT _mta-sts.b.test, the policy on
// https://mta-sts.b.test on .5:443 with a certificate from a test CA that A trusts through
// SSL_CERT_FILE). B's MX first presents its self-signed certificate: A keeps alice's message
// queued, says why in its log, and sends nothing to B, in clear or otherwise; once B presents a
// certificate from the CA for mx.b.test, A's next retry delivers it over TLS. The policy is kept
// in A's data dir.
func TestMTASTSEnforcedBetweenServers(t *testing.T) {
	w := newWorld(t)
	certs := testCA(t, []string{"mx.b.test", "mta-sts.b.test"})
	a := w.server(2, "a.test", "{retry: {initialInterval: 1s, maxInterval: 2s}}", alice)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	a.Env = append(a.Env, "SSL_CERT_FILE="+filepath.Join(certs, "ca.pem"))
	if err := a.Start(); err != nil {
		t.Fatalf("%v\n%s", err, a.Logs())
	}
	b := w.server(3, "b.test", "", bob)

	startPolicyHost(t, harness.IP(5)+":443", certs,
		"version: STSv1\r\nmode: enforce\r\nmx: mx.b.test\r\nmax_age: 86400\r\n")
	w.dns.SetA("mta-sts.b.test", harness.IP(5))
	w.dns.AddTXT("_mta-sts.b.test", "v=STSv1; id=20260101;")

	if err := submit(a, alice, "a.test", "bob@b.test", "Under MTA-STS", "Only over verified TLS"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "A defers the message for B's certificate, twice", func() error {
		n := 0
		for line := range strings.SplitSeq(a.Logs(), "\n") {
			if strings.Contains(line, "Delivery attempted") && strings.Contains(line, "MTA-STS: certificate not valid for mx.b.test") {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("%d attempts logged the certificate", n)
		}
		return nil
	})
	if ids := a.QueueIDs(); len(ids) != 1 {
		t.Errorf("A's queue holds %v, want the message", ids)
	}
	if msgs, err := inbox(b, bob, "b.test"); err != nil || len(msgs) != 0 {
		t.Fatalf("bob has %d messages (%v) from a sender that could not verify B", len(msgs), err)
	}
	if _, err := os.Stat(filepath.Join(a.DataDir, "mta-sts", "b.test.json")); err != nil {
		t.Errorf("the policy is not kept in A's data dir: %v", err)
	}

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b.Flags = append(b.Flags, "--tls-cert", filepath.Join(certs, "cert.pem"), "--tls-key", filepath.Join(certs, "key.pem"))
	if err := b.Start(); err != nil {
		t.Fatalf("%v\n%s", err, b.Logs())
	}
	msgs := waitInbox(t, b, bob, "b.test", 1, 60*time.Second)
	need(t, "bob's copy", msgs[0], "Subject: Under MTA-STS", "with ESMTPS")
	waitQueueEmpty(t, a, 10*time.Second)
}

// startPolicyHost serves body as https://<any>/.well-known/mta-sts.txt on addr with the
// certificate in dir until the test ends.
func startPolicyHost(t *testing.T, addr, dir, body string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/mta-sts.txt", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := srv.ServeTLS(ln, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("policy host: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}
