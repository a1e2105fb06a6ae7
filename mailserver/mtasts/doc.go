// Package mtasts finds the MTA-STS policies (RFC 8461) of recipient domains, so that outbound
// delivery (package delivery) cannot be downgraded to plain text or to an unverified server
// for the domains that ask for it, as Gmail and Outlook do (mode enforce).
//
// # Discovery (RFC 8461 3.1, 3.3)
//
// Policies.Lookup(domain) looks up the TXT records of _mta-sts.<domain> through the resolver of
// the MX lookups (delivery.NewResolver: --dns-resolver and its answer cache). Records that do
// not begin with "v=STSv1" are dropped; unless exactly one is left and it parses
// ("v=STSv1; id=<1-32 letters and digits>", extension fields allowed) the domain has no
// policy. With a record, the policy is https://mta-sts.<domain>/.well-known/mta-sts.txt:
//
//   - the name is resolved by the same resolver, as an absolute name; no proxy;
//   - the certificate must be valid for mta-sts.<domain> and chain to the system's roots
//     (Options.RootCAs in tests), TLS 1.2 or later;
//   - only 200 counts: a redirect is never followed (3.3), any other status is no policy;
//   - Content-Type text/plain (parameters allowed), at most MaxPolicySize (64 KiB);
//   - all within Options.FetchTimeout (20 s); one fetch per domain at a time, concurrent
//     deliveries wait for it; a failed fetch is not tried again for Options.RetryFetch (5 min).
//
// # The policy file (RFC 8461 3.2, Parse)
//
// "key: value" lines ending in LF or CRLF; version must be STSv1; mode enforce, testing or none;
// max_age in seconds (1 to 10 digits), cut to one year (31557600 s); one or more mx patterns, a
// host name or "*." and a host name (the wildcard is only ever the whole leftmost label and
// matches exactly one label, 4.1). version, mode and max_age given twice, an unknown mode, a
// bad pattern, or a missing field makes the file invalid: the domain is treated as having no
// policy, with a log line. Unknown fields are ignored.
//
// # Caching (RFC 8461 3.3, 5.1, 10.2)
//
// A fetched policy is kept in memory and, when Options.Dir is set (DATA/mta-sts), on disk as
// <domain>.json (domain, id, fetch time and the policy file as served, written with fsync and
// rename), loaded at start-up, so a restart keeps every policy. A kept policy is used until
// max_age after its fetch:
//
//   - the TXT id unchanged and the policy younger than Options.Refresh (24 h): used as it is,
//     no HTTPS request;
//   - the id changed, or the policy is older than that: fetched again; if that fails, the kept
//     one goes on being applied;
//   - no TXT record, a malformed one, or a failed TXT lookup: the kept policy is applied. An
//     attacker who strips the record or blocks the policy host cannot switch a known policy
//     off; only a new policy fetched over verified HTTPS (mode none, say) replaces it.
//   - expired: dropped from memory and disk; the next lookup starts afresh.
//
// Without a record and without a kept policy there is no policy, and nothing is remembered
// here: "no record" is the DNS answer cache's to keep (package msgauth/dnscache, through
// Options.Resolver), for the negative TTL of the domain's SOA (at most 1 h; RFC 2308 5). A
// domain that publishes a new policy is found when that answer expires.
//
// # What the caller does with it (RFC 8461 4, 5; package delivery)
//
// Policy.Match checks an MX host against the mx patterns. In mode enforce delivery tries only
// matching MX hosts, each over STARTTLS with a certificate valid for the MX host name (chaining
// to the system's roots, TLS 1.2 or later); any failure is a temporary failure of that host, so
// the message stays queued and nothing is sent in clear or to an unverified host. Mode testing
// delivers as without a policy and logs what enforce would have refused. Mode none, or no
// policy, changes nothing.
//
// # Not done
//
// TLS reporting (RFC 8460, TLSRPT), proactive refresh of policies before they expire, and DANE
// (RFC 7672), which would take precedence over MTA-STS where both are published.
package mtasts
