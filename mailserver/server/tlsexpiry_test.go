package server

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/tlsutil"
)

// writeCert writes a self-signed certificate valid for validFor into dir (key first: the server
// reloads when the certificate file changes) and returns its NotAfter.
func writeCert(t *testing.T, dir string, validFor time.Duration, mtime time.Time) time.Time {
	t.Helper()
	certPEM, keyPEM, err := tlsutil.Generate("mx.example.test", validFor)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.key": keyPEM, "tls.crt": certPEM} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p+".tmp", mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	// Renamed into place like a Kubernetes Secret volume's update: never a half-written file.
	for _, name := range []string{"tls.key", "tls.crt"} {
		p := filepath.Join(dir, name)
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
	}
	return cert.NotAfter
}

// scrapeGauge reads the value of an unlabelled metric from the health listener's /metrics.
func scrapeGauge(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// The certificate's NotAfter is on /metrics, and a renewed certificate's replaces it without any
// TLS client (the scrape looks at the files), so an expiry alert clears after cert-manager renews.
func TestTLSCertificateExpiryMetric(t *testing.T) {
	const metric = "kubemail_tls_certificate_expiry_timestamp_seconds"
	dir := t.TempDir()
	notAfter := writeCert(t, dir, 10*24*time.Hour, time.Now().Add(-time.Hour))
	r := startServer(t, copySamples(t), func(o *Options) {
		o.TLSCert, o.TLSKey = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	})
	got, err := scrapeGauge(r.addrs["health"], metric)
	if err != nil {
		t.Fatal(err)
	}
	if got != float64(notAfter.Unix()) {
		t.Fatalf("%s = %v, want the certificate's NotAfter %d (%v)", metric, got, notAfter.Unix(), notAfter)
	}

	renewed := writeCert(t, dir, 90*24*time.Hour, time.Now())
	eventually(t, "the renewed certificate's NotAfter is on /metrics", func() error {
		got, err := scrapeGauge(r.addrs["health"], metric)
		if err != nil {
			return err
		}
		if got != float64(renewed.Unix()) {
			return fmt.Errorf("%s = %v, want %d", metric, got, renewed.Unix())
		}
		return nil
	})
}
