// Package tlsutil gives the mail server its TLS configuration: a certificate from files (reloaded
// when they change, as cert-manager renews them in place), or a self-signed one made once and
// kept in the data dir so clients can pin it across restarts.
//
// A Certificate looks at its files at most once a second, when a handshake asks for it or when
// NotAfter is called (the metrics scrape does, so a renewal shows in
// kubemail_tls_certificate_expiry_timestamp_seconds even on a server no client talks TLS to). A
// file that fails to load keeps the last good certificate in force.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
)

// Config returns a server TLS config (TLS 1.2 and later) that serves the certificate in
// certFile/keyFile, reloading them when their modification time changes.
func Config(certFile, keyFile string) (*tls.Config, error) {
	c, err := Load(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return c.TLSConfig(), nil
}

// Certificate is a certificate and key from files, reloaded when their modification time
// changes.
type Certificate struct {
	r *reloader
}

// Load loads the certificate in certFile and its key in keyFile.
func Load(certFile, keyFile string) (*Certificate, error) {
	r := &reloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.load(); err != nil {
		return nil, err
	}
	return &Certificate{r: r}, nil
}

// TLSConfig returns a server TLS config (TLS 1.2 and later) serving c.
func (c *Certificate) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.r.get() },
	}
}

// NotAfter is the end of validity of the leaf certificate in force, after looking at the files
// as a handshake would.
func (c *Certificate) NotAfter() time.Time {
	cert, _ := c.r.get()
	return cert.Leaf.NotAfter
}

// SelfSigned returns the paths of a self-signed certificate for hostname under dir, making it
// the first time.
func SelfSigned(dir, hostname string) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return certFile, keyFile, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("loading the self-signed certificate in %s: %w", dir, err)
	}
	certPEM, keyPEM, err := Generate(hostname, 10*365*24*time.Hour)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	if err := durable.Replace(keyFile, keyFile+".tmp", keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := durable.Replace(certFile, certFile+".tmp", certPEM, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// Generate makes a self-signed ECDSA P-256 certificate for hostname (and, for tests and local
// use, localhost, 127.0.0.1 and ::1), PEM-encoded.
func Generate(hostname string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hostname, Organization: []string{"kubemail self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{hostname, "localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

type reloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate // with its Leaf
	modTime time.Time
	checked time.Time
}

// get returns the current certificate, looking at the files at most once a second.
func (r *reloader) get() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) < time.Second {
		return r.cert, nil
	}
	r.checked = time.Now()
	st, err := os.Stat(r.certFile)
	if err != nil || st.ModTime().Equal(r.modTime) {
		return r.cert, nil // keep serving the last good certificate
	}
	if cert, err := r.loadLocked(); err == nil {
		return cert, nil
	}
	return r.cert, nil
}

func (r *reloader) load() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked()
}

func (r *reloader) loadLocked() (*tls.Certificate, error) {
	st, err := os.Stat(r.certFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil { // set by LoadX509KeyPair since Go 1.23, unless GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", r.certFile, err)
		}
	}
	r.cert, r.modTime = &cert, st.ModTime()
	return r.cert, nil
}
