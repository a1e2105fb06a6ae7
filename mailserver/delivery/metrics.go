package delivery

import (
	"crypto/tls"
	"net"

	"github.com/kubemail/kubemail/mailserver/metrics"
)

// overTLS reports whether startTLS handed over a TLS connection (else plain text).
func overTLS(c net.Conn) bool {
	if g, ok := c.(*greetingConn); ok {
		c = g.Conn
	}
	_, ok := c.(*tls.Conn)
	return ok
}

// countConnection counts an outbound SMTP session that got through EHLO (and AUTH).
func countConnection(encrypted bool) {
	label := "false"
	if encrypted {
		label = "true"
	}
	metrics.DeliveryConnections.WithLabelValues(label).Inc()
}
