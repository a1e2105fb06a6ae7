package tlsutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// NotAfter follows a renewal of the files, and a broken file keeps the last good certificate.
func TestCertificateNotAfterFollowsTheFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write := func(validFor time.Duration, mtime time.Time) {
		t.Helper()
		certPEM, keyPEM, err := Generate("mx.example.test", validFor)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(certFile, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(24*time.Hour, time.Now().Add(-time.Hour))
	c, err := Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	first := c.NotAfter()
	if d := time.Until(first); d < 23*time.Hour || d > 24*time.Hour {
		t.Fatalf("NotAfter %v is %v away, want about 24h", first, d)
	}

	write(48*time.Hour, time.Now())
	deadline := time.Now().Add(10 * time.Second)
	for d := time.Until(c.NotAfter()); d < 47*time.Hour; d = time.Until(c.NotAfter()) {
		if time.Now().After(deadline) {
			t.Fatalf("NotAfter is %v away after the renewal, want about 48h", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	renewed := c.NotAfter()

	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(certFile, time.Now().Add(time.Hour), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c.r.mu.Lock()
	c.r.checked = time.Time{} // past the once-a-second check: the broken file is looked at
	c.r.mu.Unlock()
	if got := c.NotAfter(); !got.Equal(renewed) {
		t.Errorf("after a broken certificate file NotAfter = %v, want the last good %v", got, renewed)
	}
	if cert, err := c.TLSConfig().GetCertificate(nil); err != nil || cert == nil {
		t.Errorf("after a broken certificate file the handshake gets %v, %v: want the last good one", cert, err)
	}
}
