// Package delivery takes a queued message to its recipients: into our own mailboxes, or over
// SMTP to the server that routing picks for each recipient domain.
//
// # Routing (per recipient domain, first match wins)
//
//  1. A domain we serve (config.Directory.Domain): local delivery into the mailbox through the
//     Local deliverer (the store); an address with no mailbox fails with 550 5.1.1. The
//     mailboxes delivered into are handed, with the message's header, to Options.AutoReply
//     for their out-of-office replies (package autoreply), which works in the background.
//  2. A static route (Routing.Static: domain -> "host:port"), from the RelayPolicies' routes
//     (in Kubernetes the operator adds one per other MailDomain, to its Service). The host is
//     resolved with A/AAAA; STARTTLS is opportunistic.
//  3. A smarthost (Routing.Smarthosts): the first rule whose SenderDomains holds the envelope
//     sender's domain, or that has none (applies to all). TLS "starttls" (required, certificate
//     verified), "tls" (implicit TLS, verified) or "none"; AUTH PLAIN when credentials are given.
//     A bounce (null sender) uses the first rule that applies to all domains.
//  4. DNS: the MX records of the domain, lowest preference first, equal preferences in random
//     order (RFC 5321 5.1); with no MX record, the domain's own A/AAAA address (the "implicit
//     MX"). A null MX (a single MX "." , RFC 7505 3) fails at once with 556 5.1.10. Each MX host
//     is resolved to its addresses, tried in turn on Options.MXPort (25). STARTTLS is
//     opportunistic (RFC 7435): used whenever offered, without certificate verification, and
//     if the TLS handshake fails the same host is retried once in plain text, as Postfix does
//     with smtp_tls_security_level=may; unless the domain has an MTA-STS policy (below).
//
// # MTA-STS (RFC 8461; Options.MTASTS, package mtasts)
//
// Before MX hosts are tried, the recipient domain's policy is looked up (package mtasts:
// _mta-sts TXT record, policy fetched over verified HTTPS, kept in memory and DATA/mta-sts, a
// kept unexpired policy applied when discovery fails). Only DNS routing (4) is affected:
// smarthosts and static routes (other MailDomains) keep their own TLS settings.
//
//   - mode enforce (4.1, 4.2, 5): only the MX hosts that match the policy's mx patterns are
//     tried, in MX order; none matching defers every recipient (4.7.0). Each host must offer
//     STARTTLS (else 4.7.4) and present, over TLS 1.2 or later, a certificate valid for the MX
//     host name that chains to the system's roots (Options.RootCAs in tests; else 4.7.5,
//     "MTA-STS: certificate not valid for mx.example.com: ..."). A failure is that host's
//     temporary failure: the next host is tried, and when none is left the message stays
//     queued with the reason in the attempt's log line and in `kubemail queue list`; it
//     bounces only when the queue lifetime ends. There is no plain-text fallback, and verified
//     sessions never share idle connections with opportunistic ones.
//   - mode testing: delivery as without a policy; what enforce would have refused (MX not
//     matching, no STARTTLS, a failed handshake, a certificate not valid for the host) is
//     logged ("MTA-STS testing: ...") and counted.
//   - mode none, or no policy: as above, opportunistic.
//
// MTASTSResults (kubemail_delivery_mtasts_total{mode,result}) counts each session under a
// policy: verified, mx_mismatch, no_starttls, certificate, tls_failed. A domain without a policy
// costs a TXT lookup, answered from the DNS answer cache for as long as its negative answer
// may be kept.
//
// The resolver is a net.Resolver: NewResolver("HOST:PORT") sends the queries to that server
// (--dns-resolver), NewResolver("") to the name servers of /etc/resolv.conf, both through a
// cache of the answers that honours their TTLs, negative answers included (package
// msgauth/dnscache, shared with the MX's SPF/DKIM/DMARC checks). Go's own resolver follows
// CNAMEs, retries over TCP on truncation and tells NXDOMAIN (IsNotFound) from a failure worth
// retrying (IsTemporary, IsTimeout), which is all the routing needs.
//
// # Results
//
// Deliver returns one Result per recipient: the SMTP reply the remote server gave to RCPT or to
// the end of DATA, or a reply made up locally when no server answered. Class 2 is delivered,
// class 5 is a permanent failure (the queue bounces), anything else is retried. Local replies:
//
//	connection refused or timed out                    4.4.1   temporary
//	connection lost, no greeting in time               4.4.2   temporary
//	DNS failure (SERVFAIL, timeout)                    4.4.3   temporary
//	domain or host has no address (NXDOMAIN, NODATA)   5.4.4   permanent (as Postfix)
//	null MX                                            5.1.10  permanent (RFC 7505 3.2)
//	TLS required by the smarthost but unavailable      4.7.5   temporary
//	MTA-STS enforce: no MX host matches the policy     4.7.0   temporary
//	MTA-STS enforce: no STARTTLS                       4.7.4   temporary
//	MTA-STS enforce: certificate or handshake failed   4.7.5   temporary
//	smarthost without AUTH PLAIN, or AUTH refused      4.7.x   temporary (the operator fixes it)
//	remote lacks SMTPUTF8 for a UTF-8 address          5.6.7   permanent (RFC 6531 3.5)
//	writing into a local mailbox failed                4.3.0   temporary
//	a local mailbox the message would take past quota  4.2.2   temporary (452; the others get theirs)
//
// A greeting or EHLO that fails, a 421 or a lost connection before MAIL moves on to the next
// address or MX host; once MAIL is accepted the replies of that server are final for this attempt.
//
// # Connections
//
// At most Options.MaxConnsPerHost transactions run at once per destination (host:port). A
// connection that finished a transaction cleanly is kept idle for IdleTimeout (5 s) and reused
// for the next message to the same destination, up to MaxMessagesPerConn (100); a reused
// connection found closed (or answering 421) is replaced by a fresh one. At most 100 recipients go
// in one transaction (RFC 5321 4.5.3.1.8); more take further transactions, and so do recipients
// the server deferred with 452 "too many recipients" (RFC 5321 4.5.3.1.10) once some of the
// transaction got through.
//
// Timeouts follow RFC 5321 4.5.3.2: connect 30 s (as Postfix), greeting and MAIL/RCPT 5 min,
// DATA initiation 2 min, each block of data written 3 min, the reply to the final dot 10 min.
// All are in Timeouts, so tests can shorten them; the context cancels a delivery at once.
//
// # DKIM signing (queue.Options.Signer, Options.DKIM)
//
// Mail is DKIM-signed once per message, as it enters the queue: a message of up to
// queue.SignInMemory (256 KiB) is read into memory there, signed by the Signer (a
// msgauth.Signer signs when the From: domain is ours), and written with the DKIM-Signature
// field kept in its envelope (queue.Options.Signer). It reaches delivery as Message.Signature,
// which every transaction towards another server sends in front of the message as queued
// (SIZE= counts it); local deliveries get the message without it. Signing at enqueue, as Postfix
// does with a signing milter:
//   - everything that leaves over SMTP is signed, whoever queued it: submission, trusted
//     networks, and the queue's own notices (DSNs) whose From: is one of our domains;
//   - one signature per message whatever the retries, and a backlog (a destination back after
//     an outage) drains without RSA work: about 3,000 msg/s against 1,200 signing at send time
//     on this project's 2-core machines;
//   - the price is the RSA work before the 250 (0.8-1 ms of CPU for RSA-2048 with Go's
//     crypto/rsa, 0.1 ms for Ed25519), and a key replaced while mail is queued is not used for
//     that mail: keep the old selector's record published for the queue's lifetime (5 days).
//
// A larger message is queued as it streams in (nothing that size is held in memory) and signed
// here (Options.DKIM) when the first transaction of an attempt is about to start (a server has
// answered EHLO): read once through the Signer, then sent behind the field by every transaction
// of the attempt; an attempt that reaches no server signs nothing. So are messages queued
// unsigned (a key that could not be read at enqueue). A message that cannot be signed is sent
// unsigned, with an error in the log: delivery is not held up by a key problem, and a receiver
// may still pass DMARC on SPF.
//
// # Not yet
//
// DANE (RFC 7672) and TLS reporting (RFC 8460), the DSN extension (RFC 3461) towards the remote
// server, and conversion of 8-bit bodies for servers without 8BITMIME (they are sent as they
// are).
package delivery
