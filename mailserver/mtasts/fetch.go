package mtasts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// lookupRecord returns the policy id of domain's TXT record (RFC 8461 3.1). The error wraps
// ErrNoRecord when the domain has none that is usable (NXDOMAIN, NODATA, no or several STSv1
// records, a malformed one); any other error is a failed lookup.
func (p *Policies) lookupRecord(ctx context.Context, domain string) (string, error) {
	// Absolute: no resolv.conf search domain is appended (as for MX lookups).
	txts, err := p.opts.Resolver.LookupTXT(ctx, "_mta-sts."+domain+".")
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return ParseRecord(txts)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "", ErrNoRecord
	default:
		return "", fmt.Errorf("looking up _mta-sts.%s: %w", domain, err)
	}
}

// fetch gets https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 3.3) and parses it.
// The server must present a certificate valid for mta-sts.<domain> that chains to the roots
// (Options.RootCAs or the system's), answer 200 with Content-Type text/plain and at most
// MaxPolicySize bytes, within Options.FetchTimeout; a redirect is a failure, never followed.
func (p *Policies) fetch(ctx context.Context, domain string) (*Policy, []byte, error) {
	host := "mta-sts." + domain
	authority := host
	if p.opts.HTTPSPort != 443 {
		authority = net.JoinHostPort(host, strconv.Itoa(p.opts.HTTPSPort))
	}
	url := "https://" + authority + "/.well-known/mta-sts.txt"
	ctx, cancel := context.WithTimeout(ctx, p.opts.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed"; anything but 200 is no policy.
		return nil, nil, fmt.Errorf("fetching %s: HTTP status %s", url, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, nil, fmt.Errorf("fetching %s: Content-Type %q, want text/plain", url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if len(body) > MaxPolicySize {
		return nil, nil, fmt.Errorf("fetching %s: policy larger than %d bytes", url, MaxPolicySize)
	}
	pol, err := Parse(body)
	if err != nil {
		return nil, nil, fmt.Errorf("policy at %s: %w", url, err)
	}
	return pol, body, nil
}

// newHTTPClient is the client of the policy fetches: its own connections (no proxy from the
// environment, no keep-alive: one fetch per domain a day), names resolved by the Resolver as
// absolute names, TLS 1.2 or later verified against the roots.
func (p *Policies) newHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            p.dial,
		TLSClientConfig:        &tls.Config{RootCAs: p.opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    p.opts.FetchTimeout,
		ResponseHeaderTimeout:  p.opts.FetchTimeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       p.opts.FetchTimeout,
	}
}

// dial connects to mta-sts.<domain>:port, trying its addresses in turn.
func (p *Policies) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := p.opts.Resolver.LookupNetIP(ctx, "ip", strings.TrimSuffix(host, ".")+".")
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: min(p.opts.FetchTimeout, 10*time.Second)}
	var last error
	for _, ip := range ips {
		pn, _ := strconv.Atoi(port)
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(ip.Unmap(), uint16(pn)).String())
		if err == nil {
			return c, nil
		}
		last = err
	}
	if last == nil {
		last = fmt.Errorf("%s has no address", host)
	}
	return nil, last
}
