// Package msgauth is message authentication for kubemail: DKIM keys and signing of outbound
// mail, the SPF, DKIM, DMARC and iprev checks of inbound mail with their Authentication-Results
// header field, and DNS blocklist (DNSBL) lookups of client addresses. It is built on
// github.com/emersion/go-msgauth (DKIM, DMARC records, Authentication-Results) and
// blitiri.com.ar/go/spf (SPF); every DNS query goes through the *net.Resolver given, as absolute
// names. The server gives the resolver of
// delivery.NewResolver, whose cache (subpackage dnscache) keeps answers for their TTL, negative
// ones too (RFC 2308): the SPF and DMARC records of a sender domain are looked up once per TTL,
// not once per message.
//
// # DKIM keys (Keys)
//
// One private key per domain, in <data>/dkim/<domain>.key: PEM, PKCS#8 ("PRIVATE KEY"; PKCS#1
// "RSA PRIVATE KEY" is read too), mode 0600 in a 0700 directory. A missing key is made on first
// use, or for all domains at once by Ensure (start-up and reload): RSA-2048 by default, which
// every receiver verifies (RFC 8301), or Ed25519 (RFC 8463) when KeysOptions.Type says so. A
// key is written to a temporary file, fsynced and hard-linked into place, so an existing key
// file is never replaced, not even by a concurrent process; the directory is fsynced after.
// Rotating a key is the administrator's: publish the new record under a new selector, then
// replace the file and restart.
//
// DNSRecord gives the TXT record to publish: "<selector>._domainkey.<domain>." with
// "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" (RFC 6376 3.6.1), or k=ed25519 with the raw
// 32-byte key. The selector is "kubemail" unless KeysOptions.Selector says otherwise. An RSA-2048
// record is about 410 octets, more than one DNS character-string holds: TXTStrings splits it
// into the strings of one record (RFC 6376 3.6.2.2).
//
// # Signing (Signer)
//
// A message is signed when the domain of its (first) From: address is one of ours, with that
// domain's key: d=<From: domain>, s=<selector>, a=rsa-sha256 (or ed25519-sha256),
// c=relaxed/relaxed, no l= (a body length would let others append to the message), t= the
// signing time. h= lists, of From, To, Cc, Subject, Date, Message-ID, Reply-To, MIME-Version,
// Content-Type, Content-Transfer-Encoding, In-Reply-To and References (RFC 6376 5.4.1), each
// instance present, and From once more ("oversigned", RFC 6376 8.15) so that a second From:
// added later breaks the signature. The envelope sender plays no part: DMARC aligns with From:.
// Sign streams the message once and returns the DKIM-Signature field to prepend (nil, after
// reading only the header, for mail not from one of our domains). It is called as mail is
// queued, and at send time for messages too large to sign in memory (see the delivery
// package's doc).
//
// # Verifying (Verifier)
//
// On the MX, for clients outside the trusted networks:
//
//   - SPF (RFC 7208) of the client IP for the MAIL FROM domain, or for the HELO name when the
//     reverse-path is null (checked as postmaster@<helo>, RFC 7208 2.4). StartSPF runs it in the
//     background from MAIL on, so the lookups overlap the rest of the transaction.
//   - DKIM (RFC 6376 6): every DKIM-Signature field, at most 5, once the whole message is in.
//   - DMARC (RFC 7489): for each distinct domain of the From: addresses (several From: fields
//     or addresses are each evaluated, so an extra From: line hides nothing; a From: that
//     net/mail cannot parse is read as the domain after its last '@'; internationalized
//     names are looked up as A-labels, RFC 5890), the record at
//     _dmarc.<domain>, else at _dmarc.<organizational domain> where sp= (when given) is the
//     policy. The organizational domain comes from the public suffix list compiled into
//     golang.org/x/net/publicsuffix ("mail.example.co.uk" -> "example.co.uk"; a name under no
//     listed suffix, such as a.test, counts its last label as the suffix). DMARC passes when an
//     SPF pass or a DKIM pass has a domain aligned with the From: domain: the same
//     organizational domain (relaxed, the default) or the same domain (aspf=s, adkim=s). A
//     record that cannot be found is dmarc=none; more than one v=DMARC1 record is none too (RFC
//     7489 6.6.3).
//   - iprev (RFC 8601 2.7.3, "forward-confirmed reverse DNS"): the PTR names of the client
//     address, then the A and AAAA records of each (at most 10 names); pass when one of them is
//     the address, fail when there is no PTR record or no name maps back, temperror when a
//     lookup failed and nothing passed. StartIPRev runs it in the background from the first
//     MAIL of a connection; a check of the same address begun within the last minute is shared
//     (unless it ended in temperror), so a sender opening many connections costs one check a
//     minute (up to 10,000 addresses kept). It is recorded only: nothing is refused or junked
//     for it.
//
// Results, as RFC 8601 names them:
//
//	spf     none neutral pass fail softfail temperror permerror   (RFC 7208 2.6)
//	dkim    none (no signature) pass fail neutral temperror permerror (one per signature)
//	dmarc   none pass fail temperror permerror                     (one per From: domain)
//	iprev   pass fail temperror                                    (policy.iprev = the address)
//
// A DNS failure (SERVFAIL, timeout) is temperror and never refuses mail. DMARC is temperror,
// not fail, when no aligned pass was found but an aligned SPF or DKIM check failed on DNS:
// with DNS working it might have passed. Result.Reject is set for a DMARC fail whose policy is
// reject, for the share of mail pct= names (RFC 7489 6.6.4, sampled at random); the MX then
// refuses the message with 550 5.7.1 unless a recipient domain has IgnoreDMARCReject (the smtp
// package). Result.Quarantine is set for a DMARC fail whose policy is quarantine, for the
// share pct= names, and for a reject policy's failure outside its share (6.6.4: the next policy
// down), when Reject is not set: the MX delivers the message into every recipient's Junk folder
// (RFC 7489 6.3, "treat as suspicious"). A quarantine policy's failure outside its share gets
// none (delivered into INBOX), and so does a p=reject failure a recipient domain chose to
// deliver (IgnoreDMARCReject: "deliver" means INBOX).
//
// The checks of one message are bounded by Verifier.Timeout (20 s) from MAIL (SPF) and from the
// end of data (DKIM, DMARC); the DMARC record lookups run while the signatures are verified.
//
// # DNS blocklists (LookupDNSBL)
//
// RFC 5782: a client address is listed in a zone when <reversed address>.<zone> has an A
// record: an IPv4 address by its octets reversed ("2.0.0.127.zen.example."), an IPv6 address by
// its 32 nibbles reversed (RFC 5782 2.4); an IPv4-mapped IPv6 address as IPv4. The answers that
// count are those in the return codes the list is configured with (config.DNSBL.ReturnCodes),
// or by default any in 127.0.0.0/8 (RFC 5782 2.3), never those in 127.255.255.0/24: Spamhaus
// answers these when it refuses a query (public resolver, over quota, typing error), and
// counting them would block every client (DNSBLListing.Refused says one came). For a listed
// address the TXT record at the same name, when there is one, is the reason (printable ASCII, at
// most 200 octets, fit for a reply line). NXDOMAIN or no A record is "not listed"; any other
// failure is an error, and the smtp package then lets the mail through (fail open). A lookup
// goes through the Verifier's resolver, so answers are cached for their TTL, and is bounded by
// DefaultDNSBLTimeout (5 s). What the MX does with a listing (554 at RCPT or Junk) is the smtp
// package's.
//
// # Authentication-Results
//
// One field, prepended above the Received: field of the receiving hop (RFC 8601 5: above the
// other trace fields), with authserv-id = the server's hostname, one result per line:
//
//	Authentication-Results: mx.b.test;
//		spf=pass smtp.mailfrom=alice@a.test;
//		dkim=pass header.d=a.test header.i=@a.test;
//		dmarc=pass reason="p=reject" header.from=a.test;
//		iprev=pass policy.iprev=192.0.2.1
//
// The smtp.helo property replaces smtp.mailfrom for the null sender. reason= carries the
// policy for DMARC and a short cause for errors; DNS error details (which name our resolver) go
// to the log only. Control characters in anything the client or DNS supplied are replaced by
// spaces, so no value can end the field.
//
// Authentication-Results fields already in an arriving message that carry our authserv-id
// (compared without case) are forgeries, and RemoveOwnResults deletes them before delivery
// (RFC 8601 5); those of other servers stay, below ours. The DKIM checks see the message as it
// arrived.
//
// # Known limits
//
//   - Forged fields with our authserv-id are removed only when the header section lies within
//     the first MiB the MX holds in memory (always, in practice; not when the 64 MiB budget of
//     the smtp package sends a message to a file from its first byte). Ours is on top anyway.
//   - No ARC (RFC 8617), no DMARC reports (rua/ruf are ignored).
//   - DMARC pct= sampling is random per message.
//   - iprev's pass does not say which name passed (authres has no property for it); the smtp
//     package's log line does.
//   - The public suffix list is the one compiled into golang.org/x/net at build time.
package msgauth
