// Package dnscheck checks that the DNS records a MailDomain's status asks for
// (status.dnsRecords, rendered by controllers/builder.DNSRecords) are published, the way a
// receiving mail server will look them up. It is the check behind the MailDomain condition
// DNSPublished: the most common reason self-hosted mail does not reach Gmail or Outlook is DNS
// that was never published, or published wrong.
//
// Each record is checked for what it means, not compared as a string:
//
//   - MX: the expected host is among the domain's MX targets (trailing dots and case ignored;
//     other MX hosts are fine). A null MX (RFC 7505) is a mismatch: it says the domain takes no
//     mail.
//   - A, AAAA: the expected address is among the answers for the host.
//   - CNAME: the host's canonical name is the expected target, or that target's own canonical
//     name.
//   - SPF (TXT "v=spf1 ..."): the domain has exactly one SPF record (RFC 7208 3.2: more than one
//     is a permerror, and receivers then ignore SPF), and when the mail server's public
//     addresses are known, evaluating the record for each of them (RFC 7208 4, with
//     blitiri.com.ar/go/spf over the same resolver) gives pass.
//   - DKIM (TXT "v=DKIM1 ..." at SELECTOR._domainkey.DOMAIN): exactly one key record there,
//     and its p= (the TXT strings joined, whitespace ignored; RFC 6376 3.6.2.2) is our public
//     key. A shorter prefix of it is reported as truncated, another key as not this domain's.
//   - DMARC (TXT "v=DMARC1 ..." at _dmarc.DOMAIN): exactly one record (RFC 7489 6.6.3) with a
//     valid p= policy; any policy passes, and p=none is noted in the message (receivers then
//     only report).
//   - Any other TXT record: a TXT record with the same text, whitespace ignored.
//
// Beside those, when Domain.MailHost is set (the operator sets builder.MailHost, the host the MX
// record names and the mail server announces in EHLO), the reverse DNS of each of the mail
// server's public addresses (the addresses SPF is evaluated for) is checked: forward-confirmed
// reverse DNS, which Gmail and Outlook require of a sending address. Some PTR name of the
// address is the mail host (trailing dots and case ignored), and the mail host's A/AAAA
// records include the address. Otherwise the finding names what was found (the other PTR
// names, or the addresses the mail host has) and who fixes it: a PTR record is published by
// the address's owner (the cloud provider), not in the domain's zone, so it is not in
// status.dnsRecords (whose records users copy into their zone) and the message counts it apart
// ("the 5 of status.dnsRecords and the PTR record of the mail server's address"); its finding
// reads "PTR 203.0.113.5: ...".
//
// Outcomes per record: OK, Missing (NXDOMAIN or no record of that type: "none published"),
// Mismatch (something else is published; the finding says what) or Failed (the lookup itself
// failed: SERVFAIL, a timeout, an SPF temperror). Report.Condition folds them into the
// condition: True/Published when all are OK; False/RecordsMissing when any record is missing,
// else False/RecordsMismatch when any is wrong (a missing record often makes another one
// wrong: SPF's "mx" needs the MX record); Unknown/LookupFailed when lookups failed and nothing
// was found missing or wrong. The message names every record that is not OK and what was found.
//
// The message depends only on what DNS answers, never on the time or the order of the answers
// (found values are sorted, lookup errors are reduced to their kind), so a check that finds
// the same as the last one yields the same condition and the operator writes nothing.
//
// Names are looked up fully qualified (with the trailing dot), so the search domains of a pod's
// resolv.conf never apply. Every lookup has its own timeout (Checker.LookupTimeout); the
// records are checked concurrently, so a check takes about as long as its slowest record.
// NewResolver gives Go's resolver without a cache, pointed at one name server or at those of
// /etc/resolv.conf: a check sees a record as soon as the name server does.
package dnscheck
