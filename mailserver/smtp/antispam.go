package smtp

import (
	"crypto/tls"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/msgauth"
	"github.com/kubemail/kubemail/mailserver/store"
)

// junkFolder is where the MX puts mail it judged suspicious: the folder every mailbox has with
// the \Junk attribute (RFC 6154).
const junkFolder = "Junk"

// dnsblAnswer is one list's verdict on the session's client, kept for the connection.
type dnsblAnswer struct {
	listing msgauth.DNSBLListing
	failed  bool // the lookup failed: the list is left out (fail open)
}

// dnsblKey names a lookup: the zone and the return codes that count.
func dnsblKey(l config.DNSBL) string {
	if len(l.ReturnCodes) == 0 {
		return l.Zone
	}
	return fmt.Sprint(l.Zone, l.ReturnCodes)
}

// checkDNSBLs looks the client up in the blocklists of a recipient's domain (RFC 5782), once per
// connection and list, at the first RCPT that needs it; the lists of one domain are asked at
// once. It returns a 554 5.7.1 reply naming the first listing Reject list, else the zone of the
// first listing Junk list (the recipient's copy goes into Junk), else nothing. Authenticated
// users, clients in a trusted network and failed lookups are let through.
func (s *session) checkDNSBLs(tx *transaction, dom *config.Domain) (junkZone, reason string, err error) {
	lists := dom.DNSBLs()
	v := s.b.opts.Verifier
	if len(lists) == 0 || v == nil || s.b.role != roleMX || tx.user != nil {
		return "", "", nil
	}
	ip := clientIP(s.remote)
	if !ip.IsValid() || tx.dir.Trusted(ip) {
		return "", "", nil
	}
	if s.dnsbl == nil {
		s.dnsbl = map[string]dnsblAnswer{}
	}
	answers := make([]dnsblAnswer, len(lists))
	var wg sync.WaitGroup
	for i, l := range lists {
		if _, done := s.dnsbl[dnsblKey(l)]; !done {
			wg.Go(func() { answers[i] = s.lookupDNSBL(v, ip, l) })
		}
	}
	wg.Wait()
	for i, l := range lists {
		if _, done := s.dnsbl[dnsblKey(l)]; !done {
			s.dnsbl[dnsblKey(l)] = answers[i]
		}
	}
	for _, action := range []string{config.DNSBLReject, config.DNSBLJunk} {
		for _, l := range lists {
			a := s.dnsbl[dnsblKey(l)]
			if l.Action != action || a.failed || !a.listing.Listed {
				continue
			}
			if action == config.DNSBLJunk {
				return l.Zone, "", nil
			}
			return "", "client listed by " + l.Zone, dnsblReply(ip, l.Zone, a.listing.Reason)
		}
	}
	return "", "", nil
}

// carryDNSBLAnswers hands the session's DNSBL answers to the connection's next session when this
// one ends because of STARTTLS: go-smtp then ends the session after the handshake (RFC 3207 4.2:
// what was learned from the client is discarded), with the connection already under TLS, and
// starts the next at the EHLO that follows. The answers are about the client's address, which
// TLS does not change, so a list is still asked once per connection. Answers not picked up
// within the read timeout (no EHLO after the handshake: the connection has timed out) are
// dropped, so a client that never says EHLO again leaves nothing behind. Called by Logout.
func (s *session) carryDNSBLAnswers() {
	if s.tls != nil || s.b.role != roleMX {
		return // a session under TLS ends with its connection
	}
	s.mu.Lock()
	answers := s.dnsbl
	s.mu.Unlock()
	if len(answers) == 0 {
		return
	}
	if _, upgraded := s.conn.Conn().(*tls.Conn); !upgraded {
		return // the connection is closing
	}
	c := s.conn
	s.b.dnsblCarried.Store(c, answers)
	wait := c.Server().ReadTimeout
	if wait <= 0 {
		wait = readTimeout
	}
	time.AfterFunc(wait, func() { s.b.dnsblCarried.Delete(c) })
}

// lookupDNSBL asks one list, counts and logs the outcome.
func (s *session) lookupDNSBL(v *msgauth.Verifier, ip netip.Addr, l config.DNSBL) dnsblAnswer {
	listing, err := v.LookupDNSBL(s.ctx, ip, l.Zone, l.ReturnCodes)
	switch {
	case err != nil:
		metrics.DNSBLLookups.WithLabelValues(l.Zone, metrics.DNSBLError).Inc()
		s.log.Warn("Failed a DNSBL lookup; not applying the list", "zone", l.Zone, "ip", ip, "err", err)
		return dnsblAnswer{failed: true}
	case listing.Listed:
		metrics.DNSBLLookups.WithLabelValues(l.Zone, metrics.DNSBLListed).Inc()
		s.log.Info("Found the client in a DNSBL", "zone", l.Zone, "ip", ip, "codes", listing.Codes, "action", l.Action)
	case listing.Refused:
		metrics.DNSBLLookups.WithLabelValues(l.Zone, metrics.DNSBLRefused).Inc()
		if _, warned := s.b.dnsblRefusals.LoadOrStore(l.Zone, true); !warned {
			// Spamhaus refuses queries through public resolvers and past the free quota: the
			// list protects nothing until the resolver is fixed. Said once per list.
			s.log.Warn("A DNSBL refused our query (error code answer); its answers are ignored until it stops",
				"zone", l.Zone, "answers", listing.Ignored)
		}
	default:
		metrics.DNSBLLookups.WithLabelValues(l.Zone, metrics.DNSBLNotListed).Inc()
	}
	return dnsblAnswer{listing: listing}
}

// dnsblReply is Postfix's reject_rbl_client reply (RFC 3463 X.7.1: delivery not authorized),
// with the list's TXT record when it has one.
func dnsblReply(ip netip.Addr, zone, txt string) *gosmtp.SMTPError {
	msg := fmt.Sprintf("Service unavailable; Client host [%s] blocked using %s", ip.Unmap(), zone)
	if txt != "" {
		msg += "; " + txt
	}
	return reply(554, gosmtp.EnhancedCode{5, 7, 1}, msg)
}

// targets are the copies the store makes: each mailbox's folder, Junk for those the checks
// judged suspicious.
func (tx *transaction) targets() []store.Target {
	ts := make([]store.Target, len(tx.mailboxes))
	for i, mb := range tx.mailboxes {
		ts[i] = store.Target{Mailbox: mb}
		if tx.quarantine != "" || tx.junk[mb] != "" {
			ts[i].Folder = junkFolder
		}
	}
	return ts
}

// inboxes are the mailboxes whose copy goes into the INBOX (not Junk).
func (tx *transaction) inboxes() []string {
	if tx.quarantine != "" {
		return nil
	}
	var out []string
	for _, mb := range tx.mailboxes {
		if tx.junk[mb] == "" {
			out = append(out, mb)
		}
	}
	return out
}

// junkAttrs are the "Accepted message" log line's attributes for a message that went into Junk,
// and the metric's count of it (once per message, by its first reason).
func (s *session) junkAttrs(tx *transaction) []any {
	var junked []string
	reasons := map[string]bool{}
	for _, mb := range tx.mailboxes {
		switch {
		case tx.quarantine != "":
			junked = append(junked, mb)
		case tx.junk[mb] != "":
			junked = append(junked, mb)
			reasons["dnsbl "+tx.junk[mb]] = true
		}
	}
	if len(junked) == 0 {
		return nil
	}
	why := make([]string, 0, len(reasons)+1)
	label := metrics.JunkDNSBL
	if tx.quarantine != "" {
		why = append(why, "dmarc p=quarantine of "+tx.quarantine)
		label = metrics.JunkDMARC
	}
	why = append(why, slices.Sorted(maps.Keys(reasons))...)
	metrics.SMTPJunked.WithLabelValues(s.b.role.String(), label).Inc()
	attrs := []any{"folder", junkFolder, "junk_reason", strings.Join(why, ", ")}
	if len(junked) < len(tx.mailboxes) {
		attrs = append(attrs, "junked", junked)
	}
	return attrs
}
