package deliverytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority made for one test: what the test trusts instead of the
// system's roots (delivery.Options.RootCAs, mtasts.Options.RootCAs).
type CA struct {
	t      testing.TB
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	serial atomic.Int64
}

// NewCA makes a CA valid for a day.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubemail test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{t: t, cert: cert, key: key}
	ca.serial.Store(1)
	return ca
}

// Pool holds the CA's certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// ClientTLS is a client config that trusts the CA only (delivery.Options.RootCAs).
func (ca *CA) ClientTLS() *tls.Config { return &tls.Config{RootCAs: ca.Pool()} }

// Issue makes a server certificate for the names, signed by the CA.
func (ca *CA) Issue(names ...string) tls.Certificate {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// ServerTLS is a server config presenting a certificate for the names (deliverytest.Server's
// SetTLS).
func (ca *CA) ServerTLS(names ...string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.Issue(names...)}, MinVersion: tls.VersionTLS12}
}

// PolicyServer is an HTTPS server for MTA-STS policy hosts (mta-sts.<domain>): it serves
// /.well-known/mta-sts.txt with what it is told, under a certificate from the CA for the
// names it is started with.
type PolicyServer struct {
	Addr string // ip:port

	mu          sync.Mutex
	body        string
	contentType string
	status      int
	location    string
	requests    int
	srv         *http.Server
}

// StartPolicyServer serves on ip (any port) with a certificate for names until the test ends.
func StartPolicyServer(t testing.TB, ca *CA, ip string, names ...string) *PolicyServer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	p := &PolicyServer{Addr: ln.Addr().String(), contentType: "text/plain", status: http.StatusOK}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/mta-sts.txt", p.serve)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: ca.ServerTLS(names...), ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("policy server: %v", err)
		}
	}()
	t.Cleanup(func() {
		p.Stop()
		<-done
	})
	return p
}

func (p *PolicyServer) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests++
	body, ct, status, loc := p.body, p.contentType, p.status, p.location
	p.mu.Unlock()
	w.Header().Set("Content-Type", ct)
	if loc != "" {
		w.Header().Set("Location", loc)
	}
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// Set serves body from now on, as text/plain with 200.
func (p *PolicyServer) Set(body string) { p.SetResponse(http.StatusOK, "text/plain", "", body) }

// SetResponse serves any status, Content-Type, Location ("" for none) and body from now on.
func (p *PolicyServer) SetResponse(status int, contentType, location, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.contentType, p.location, p.body = status, contentType, location, body
}

// Requests is how many policy requests arrived.
func (p *PolicyServer) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// Port is the server's port.
func (p *PolicyServer) Port() int {
	_, port, _ := net.SplitHostPort(p.Addr)
	n := 0
	for _, c := range port {
		n = n*10 + int(c-'0')
	}
	return n
}

// Stop closes the server: policy fetches fail from now on.
func (p *PolicyServer) Stop() { p.srv.Close() }
