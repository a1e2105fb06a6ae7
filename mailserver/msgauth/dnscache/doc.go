// Package dnscache is the DNS answer cache of the mail server: every SPF, DKIM and DMARC lookup
// of the MX and every MX and address lookup of outbound delivery goes through it. Postfix relies
// on the system's caching resolver for the same; a kubemail pod cannot count on one, and a mail
// server asks the same questions over and over (the SPF and DMARC records of a busy sender
// domain, the MX of a busy recipient domain).
//
// # How it sits in the resolver
//
// Cache.Resolver returns Go's own resolver (net.Resolver with PreferGo) whose Dial hands it a
// connection to the cache instead of a socket. Go's resolver keeps doing everything it does
// (the resolv.conf name servers, search domains and options, /etc/hosts, CNAME chains,
// NXDOMAIN versus failure, the retry over TCP after a truncated answer); the cache sees each
// DNS query as it is sent and answers it from memory when it can, otherwise it sends the query
// to the name server (the one Go picked from resolv.conf, or the --dns-resolver address),
// returns the answer as it came, and keeps it when it may.
//
// # What is kept, and for how long
//
// An entry is the whole answer to one question <QNAME (without case), QTYPE, QCLASS>:
//
//   - A positive answer (NOERROR with a record of the asked type, possibly behind CNAMEs) is kept
//     for the smallest TTL of its answer records (RFC 1035 3.2.1, RFC 2181 5.2), at most
//     Options.MaxTTL (default 24 h).
//   - A negative answer, NXDOMAIN or NODATA (NOERROR without a record of the asked type), is
//     kept for the smaller of the TTL of the SOA record in its authority section and that
//     SOA's MINIMUM field (RFC 2308 3 and 5), and of any CNAME TTL before it, at most
//     Options.MaxNegativeTTL (default 1 h, RFC 2308 5 recommends one to three hours at most).
//     A negative answer without an SOA is not kept (RFC 2308 5: it must not be cached).
//   - Nothing else is kept: SERVFAIL, REFUSED and every other error code, truncated answers
//     (TC, retried over TCP by the resolver), answers with a TTL of 0, malformed answers, and
//     answers over 16 KiB.
//
// An answer served from the cache is the one stored with the query's ID and question (the
// question's case included), and every record's TTL reduced by the whole seconds the answer
// has been kept (never below 0; the EDNS OPT pseudo-record is left alone), as a caching
// resolver does (RFC 1035 7.3, RFC 2181 8).
//
// # Size and concurrency
//
// The cache holds at most Options.MaxBytes (default 4 MiB) of answers and keys; past it the
// least recently used entries go first. Expired entries are dropped when met. A Cache is safe
// for concurrent use: one mutex guards the map and the recency list, held only for the lookup
// and the copy of an answer, never during network I/O. Concurrent queries for the same question
// that miss the cache wait for the one sent (per transport, UDP or TCP) and get its answer,
// instead of sending their own.
//
// # Known limits
//
//   - An NXDOMAIN is kept per question, not for the whole name (RFC 2308 5 allows it for every
//     type of the name).
//   - No prefetch of entries about to expire, no serve-stale (RFC 8767).
//   - The upstream is trusted as the system resolver is: no DNSSEC validation here.
package dnscache
