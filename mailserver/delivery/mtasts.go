package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubemail/kubemail/mailserver/mtasts"
)

// MTASTSResults counts the outbound sessions to MX hosts of domains with an MTA-STS policy in
// mode enforce or testing, by mode and result; register it with metrics.NewRegistry.
var MTASTSResults = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "kubemail", Subsystem: "delivery", Name: "mtasts_total",
	Help: "Outbound SMTP sessions to MX hosts of domains with an MTA-STS policy (RFC 8461), by mode (enforce, testing) and result: " +
		"verified (STARTTLS with a certificate valid for the MX host), mx_mismatch (no MX host matches the policy: deferred in enforce), " +
		"no_starttls, certificate (not valid for the MX host or not trusted), tls_failed (STARTTLS or the handshake failed). " +
		"In mode enforce every result but verified deferred the host; in mode testing the mail went as without a policy.",
}, []string{"mode", "result"})

// MTA-STS results, the metric's label values.
const (
	stsVerified    = "verified"
	stsMXMismatch  = "mx_mismatch"
	stsNoSTARTTLS  = "no_starttls"
	stsCertificate = "certificate"
	stsTLSFailed   = "tls_failed"
)

func init() {
	for _, mode := range []mtasts.Mode{mtasts.Enforce, mtasts.Testing} {
		for _, r := range []string{stsVerified, stsMXMismatch, stsNoSTARTTLS, stsCertificate, stsTLSFailed} {
			MTASTSResults.WithLabelValues(string(mode), r)
		}
	}
}

// applyMTASTS looks up the recipient domain's MTA-STS policy and applies it to the MX hosts
// (RFC 8461 4.1, 5): in mode enforce only the matching hosts are left and the plan requires
// verified STARTTLS; with none matching every recipient gets a temporary failure (the queue
// retries, and bounces at the end of its lifetime as for any other). In mode testing the hosts
// and the plan's opportunistic TLS stay, and what enforce would have refused is logged.
func (c *Client) applyMTASTS(ctx context.Context, m *Message, domain string, hosts []string, plan *dialPlan) ([]string, *Result) {
	if c.opts.MTASTS == nil {
		return hosts, nil
	}
	pol := c.opts.MTASTS.Lookup(ctx, domain)
	if pol == nil || pol.Mode == mtasts.None {
		return hosts, nil
	}
	plan.stsDomain = domain
	var matching, others []string
	for _, h := range hosts {
		if pol.Match(h) {
			matching = append(matching, h)
		} else {
			others = append(others, h)
		}
	}
	if pol.Mode == mtasts.Testing {
		plan.stsTesting = true
		if len(others) > 0 {
			MTASTSResults.WithLabelValues(string(mtasts.Testing), stsMXMismatch).Inc()
			c.log.Warn("MTA-STS testing: MX hosts not in the policy; delivered as without one", "id", m.ID, "domain", domain,
				"hosts", strings.Join(others, ","), "policy_mx", strings.Join(pol.MX, ","))
		}
		return hosts, nil
	}
	plan.tls = stsEnforce
	if len(matching) == 0 {
		MTASTSResults.WithLabelValues(string(mtasts.Enforce), stsMXMismatch).Inc()
		r := local("", "4.7.0", "MTA-STS: no MX host of %s (%s) matches its policy (mx: %s)", domain,
			strings.Join(hosts, ", "), strings.Join(pol.MX, ", "))
		return nil, &r
	}
	if len(others) > 0 {
		c.log.Info("MTA-STS: skipped MX hosts not in the policy", "id", m.ID, "domain", domain, "hosts", strings.Join(others, ","))
	}
	return matching, nil
}

// stsFailure handles a check MTA-STS asks for that failed at host. In mode enforce it is the
// host's result: a temporary failure, so nothing goes in clear or to an unverified host. In mode
// testing it is a log line and delivery goes on as without a policy (nil). Without a policy, nil.
func (c *Client) stsFailure(plan dialPlan, host, result, status, format string, args ...any) *Result {
	reason := fmt.Sprintf(format, args...)
	switch {
	case plan.tls == stsEnforce:
		MTASTSResults.WithLabelValues(string(mtasts.Enforce), result).Inc()
		return ptr(local("", status, "MTA-STS: %s", reason))
	case plan.stsTesting:
		MTASTSResults.WithLabelValues(string(mtasts.Testing), result).Inc()
		c.log.Warn("MTA-STS testing: enforce would have deferred this host; delivered as without a policy", "domain", plan.stsDomain,
			"host", host, "reason", "MTA-STS: "+reason)
	}
	return nil
}

// stsVerify checks, in mode testing, the certificate an opportunistic handshake did not verify,
// as enforce would have (RFC 8461 4.2), and counts the result.
func (c *Client) stsVerify(plan dialPlan, host string, cs tls.ConnectionState) {
	if !plan.stsTesting {
		return
	}
	if err := c.verifyPeer(host, cs); err != nil {
		c.stsFailure(plan, host, stsCertificate, "", "certificate not valid for %s: %v", host, err)
		return
	}
	MTASTSResults.WithLabelValues(string(mtasts.Testing), stsVerified).Inc()
}

// stsHandshakeFailure is the result of a failed handshake under a policy.
func (c *Client) stsHandshakeFailure(plan dialPlan, host string, err error) *Result {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return c.stsFailure(plan, host, stsCertificate, "4.7.5", "certificate not valid for %s: %v", host, cve.Err)
	}
	return c.stsFailure(plan, host, stsTLSFailed, "4.7.5", "TLS handshake with %s failed: %v", host, err)
}

// verifyPeer verifies the server's chain against the roots for host, as a verified handshake
// does.
func (c *Client) verifyPeer(host string, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	var roots *x509.CertPool
	if c.opts.RootCAs != nil {
		roots = c.opts.RootCAs.RootCAs
	}
	inter := x509.NewCertPool()
	for _, cert := range cs.PeerCertificates[1:] {
		inter.AddCert(cert)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
	return err
}
