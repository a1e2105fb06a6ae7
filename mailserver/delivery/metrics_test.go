package delivery_test

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/mailserver/metrics"
)

func TestConnectionsAreCountedByTLS(t *testing.T) {
	count := func(tls string) float64 {
		return testutil.ToFloat64(metrics.DeliveryConnections.WithLabelValues(tls))
	}
	e := newEnv(t)
	encrypted, plain := count("true"), count("false")
	wantStatus(t, deliver(t, e.client(t), testMessage("over-tls", "alice@a.test", "bob@b.test"))[0], "2.0.0")
	if d := count("true") - encrypted; d != 1 {
		t.Errorf("tls=true grew by %v after a STARTTLS delivery, want 1", d)
	}

	e.b.Stop()
	e.b.SetTLS(&tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return nil, errors.New("no certificate")
	}})
	e.b.Start()
	encrypted = count("true")
	wantStatus(t, deliver(t, e.client(t), testMessage("plain", "alice@a.test", "bob@b.test"))[0], "2.0.0")
	if d := count("false") - plain; d != 1 {
		t.Errorf("tls=false grew by %v after the plain-text fallback, want 1", d)
	}
	if d := count("true") - encrypted; d != 0 {
		t.Errorf("tls=true grew by %v for a failed handshake", d)
	}
}
