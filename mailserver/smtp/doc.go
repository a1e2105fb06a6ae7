// Package smtp is kubemail's SMTP server side, on github.com/emersion/go-smtp: the MX (port 25,
// mail from other servers into our mailboxes) and submission (587 with STARTTLS, 465 with
// implicit TLS: mail from our own users).
//
// # Extensions
//
// EHLO advertises PIPELINING (RFC 2920), 8BITMIME (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034),
// CHUNKING (BDAT, RFC 3030), STARTTLS (RFC 3207, until the connection is under TLS), SMTPUTF8
// (RFC 6531) and SIZE (RFC 1870) with the largest message size of any domain; submission adds
// AUTH PLAIN LOGIN (RFC 4954) once under TLS. BINARYMIME, DSN and the other extensions go-smtp
// knows are not offered.
//
// # One transaction
//
// MAIL takes the live config directory once; every later decision of the transaction uses it,
// so a reload never splits a transaction. The one exception is a submission user's access,
// checked against the config in force at every MAIL, RCPT and DATA/BDAT (see Submission). The
// checks and their replies, in order:
//
//	MAIL  nested MAIL                                   503 5.5.1  (RFC 5321 4.1.4)
//	      bad address syntax                            501 5.1.7
//	      non-ASCII address without SMTPUTF8            553 5.6.7  (RFC 6531 3.5)
//	      SIZE= over the advertised limit               552 5.3.4  (go-smtp, RFC 1870)
//	      submission: no AUTH                           530 5.7.0  (RFC 6409 4.1)
//	      submission: access revoked since AUTH         421 4.7.0, connection closed (also at
//	                                                               RCPT and DATA/BDAT; see Submission)
//	      submission: sender not the user's             553 5.7.1  (RFC 6409 8.1)
//	RCPT  bad address syntax                            501 5.1.3
//	      non-ASCII address without SMTPUTF8            553 5.6.7
//	      domain not ours, client may not relay         554 5.7.1  Relay access denied
//	      domain not ours, no queue (Options.Queue nil) 554 5.7.1  outbound not enabled
//	      relay trick in the local part                 554 5.7.1  (see below)
//	      MX: client in a Reject DNSBL of the domain    554 5.7.1  Service unavailable; Client host
//	                                                               [IP] blocked using ZONE (see Spam defense)
//	      group: sender not allowed by acceptFrom       550 5.7.1  (names the policy; see Groups)
//	      no mailbox, alias, group or plus-address      550 5.1.1
//	      SIZE= over this domain's limit                552 5.3.4  (RFC 1870 6.1)
//	      mailbox at or over its quota                  452 4.2.2  Mailbox full (RFC 3463 X.2.2; see Quota)
//	      SIZE= would take the mailbox past its quota   452 4.2.2  (RFC 1870 6.1)
//	      SIZE= larger than the mailbox's whole quota   552 5.2.3  (RFC 3463 X.2.3: can never fit)
//	      past the recipient limit                      452 4.5.3  (RFC 5321 4.5.3.1.10)
//	      more than 20 rejected RCPTs on a connection   421 4.7.0, connection closed
//	DATA/BDAT
//	      more bytes than the smallest limit of the recipients' domains   552 5.3.4
//	      a bare LF (LF not after CR)                   550 5.5.2  (RFC 5321 2.3.8)
//	      a line over 2000 octets                       500 5.5.2, then go-smtp's 500 5.4.0 and close
//	      no data for the idle timeout                  421 4.4.2, connection closed
//	      DMARC fail, From: domain has p=reject         550 5.7.1  (MX with Options.Verifier; RFC 7489 6.6.4)
//	      a group's X-Loop field in the header          554 5.4.6  (RFC 5321 6.3; see Groups)
//	      a recipient mailbox would pass its quota      452 4.2.2  for the whole transaction (see Quota)
//	      larger than every recipient mailbox's quota   552 5.2.3
//	      store failure                                 451 4.3.0, or 452 4.3.1 when the disk is full
//	      accepted                                      250 2.0.0 OK: queued as <id>
//
// Limits are per recipient domain (config.Domain MaxMessageSize, default 25 MiB; MaxRecipients,
// default 100); a transaction to several domains is held to the smallest of them. The recipient
// count includes repeats, but the same mailbox reached twice (by its address, an alias, a
// plus-address "alice+tag@") gets one copy.
//
// # Quota
//
// A Mailbox's quota (config.Mailbox.Quota: bytes in all its folders; 0 is none) is enforced with
// the store's running count of each mailbox (store.Usage, store.DeliverWithQuota) at two points:
//
//   - RCPT, per recipient: a mailbox at or over its quota gets 452 4.2.2 "Mailbox full". With a
//     declared SIZE=, a mailbox the message would take past its quota gets 452 4.2.2 too, and one
//     whose whole quota is smaller than SIZE= gets 552 5.2.3. The other recipients are unaffected:
//     the sender's server delivers to them now and retries only the refused one. These refusals do
//     not count towards the rejected recipients that end a connection.
//   - End of DATA/BDAT, per transaction: the store reads the whole message, then checks every
//     recipient mailbox against the size actually stored (our Received: header included) before it
//     makes any copy. If any mailbox would pass its quota, no copy is made anywhere and the whole
//     transaction gets 452 4.2.2; 552 5.2.3 when the message is larger than the quota of every
//     recipient mailbox, since no retry could ever deliver it.
//
// Why the whole transaction: SMTP has one reply to the data for all recipients (a reply per
// recipient after the data is LMTP's, RFC 2033), and the store delivers all-or-nothing. Answering
// 250 after delivering only to the recipients with room would leave the full mailbox's copy to be
// bounced or forced past the quota; answering 4xx after delivering to some would make the sender
// retry them all, and they would get the message twice. Refusing the whole transaction with 452
// loses nothing (the sender's server keeps the message and retries) and duplicates nothing (no copy
// was made). The price is that the other recipients wait with the full one. That case is rare:
// whenever the sender declares SIZE= (Postfix and Exim always do when SIZE is offered) the RCPT
// check takes a mailbox the message would overfill out of the transaction before the data, and a
// retry of a refused transaction gets the per-recipient answer at RCPT. It remains for clients
// that declare no SIZE=, and for a mailbox that filled up between RCPT and the end of the data.
//
// A transaction with a remote recipient goes to the outbound queue whole (see No open relay): its
// local recipients are checked at RCPT only, and the queue delivers their copies with
// store.Deliver, unchecked, as it does the server's delivery status notices, which reach a full
// mailbox all the same. Refusals are counted in kubemail_mailbox_quota_refusals_total.
//
// # No open relay
//
// Mail for a domain we do not serve is accepted only for the outbound queue (Options.Queue), and
// only from an authenticated user (submission) or a client in a RelayPolicy's trustedNetworks
// (either server, like Postfix's mynetworks); anyone else gets 554 5.7.1. Remote recipients keep
// their local part as sent (re-quoted if it needs quotes); address literals are never relayed.
// When a transaction has a remote recipient, the whole message goes to the queue, which also
// delivers its local recipients: one sink, one durable copy before the 250.
// The classic tricks are closed:
//   - source routes "<@relay:user@ours>" are ignored as RFC 5321 4.1.1.3 and appendix C allow
//     (go-smtp drops the route): the mail goes to user@ours, and only if that is a mailbox here;
//     "<@ours:user@elsewhere>" is mail for elsewhere, refused;
//   - the percent hack "user%elsewhere@ours", bang paths "elsewhere!user@ours" and quoted local
//     parts with an '@' ("\"user@elsewhere\"@ours") get 554 5.7.1: no mailbox has such a name;
//   - other quoted local parts are compared unquoted (RFC 5321 4.1.2: "\"alice\"" is alice);
//   - address literals "user@[192.0.2.1]" are never ours.
//
// Local parts compare case-insensitively, as the config stores addresses in lower case.
//
// # Groups (distribution lists)
//
// A MailGroup's address, or a plus-address of it ("team+x@"), is a recipient like a mailbox's
// (config.Directory.Group; a mailbox or alias of the same address cannot exist). It counts as one
// recipient towards the limits and takes its domain's size limit; its members are not checked
// against their quotas at RCPT. acceptFrom decides at RCPT, with 550 5.7.1 naming the policy:
//
//   - Anyone: every sender, on either server.
//   - Members: the authenticated user's mailbox (submission) is a member, or the envelope sender
//     is one: a mailbox of ours by any of its addresses, or a remote member's address in any
//     case. On the MX this trusts the envelope sender, as list servers do; DMARC p=reject
//     (see Authenticity) is what stops a forged member of a domain that publishes it. The null
//     sender is never a member.
//   - Domain: the envelope sender is in the group's domain and vouched for: an authenticated
//     user (submission) or a client in a trusted network. Anyone else, on the MX, is refused.
//
// At the end of the data the members are worked out (config.Group.Expanded: nested groups are
// already flat, loops refused by config.Resolve): each address once across the transaction, so
// a member who is also a direct recipient, or in two groups of the transaction, gets one copy.
// Each group's copy (unless suspect, below) goes to the outbound queue as one message with the
// envelope sender rewritten to the group's bounce address "local+bounces@domain"
// (config.Group.BounceAddress), local members included, and an "X-Loop: <group address>" field
// under our Received:. Why:
//
//   - RFC 5321 3.9.2: a list's copies carry the list's own address as reverse-path, so bounces
//     from members never go back to the original (possibly outside) sender. The bounce address
//     delivers into the domain's postmaster mailbox (postmaster@domain, an address or alias),
//     which is what a mail administrator expects of bounces nobody else owns; a domain without
//     one refuses mail to it (550 5.1.1) and the queue's own notices to it are logged and dropped.
//   - No open relay: a group reaches only its declared members; an outside sender cannot name
//     any other remote recipient through it.
//   - Quota: the queue delivers the local members' copies (delivery.Client's local route), where
//     a full mailbox gets 4.2.2 and is retried from the queue while the other members have theirs;
//     one full member never fails the whole group's transaction.
//   - Loops: a message whose header (its first 256 KiB) already has "X-Loop: <group address>" of
//     a group in the transaction went through that group: the whole transaction is refused with
//     554 5.4.6, so the previous hop bounces it (to the group's bounce address when that hop was
//     a member's forwarding) instead of it circling.
//
// The direct recipients of the same transaction are delivered as without groups, after the group
// copies are queued; with both, the message is spooled once (see Authenticity) and read again for
// each. If a later step fails (a direct mailbox full, the disk), the group copies already queued
// are deleted again (queue Delete) before the 4xx, so the client's retry does not duplicate them;
// only a copy the queue delivered within those milliseconds could arrive twice, never none.
// Without Options.Queue (tests), local members join the direct delivery and remote ones are
// left out, logged.
//
// Suspected spam is not forwarded. A group's copy is suspect when the MX would put it into Junk
// (see Spam defense): the message asks for DMARC quarantine, or a DNSBL with action Junk listed
// the client at the group's RCPT (for the group's domain). Such a copy is not queued: its local
// members join the direct delivery, each once, their copy going into Junk as a mailbox
// recipient's would (stored before the 250, under the same all-or-nothing quota rule: a full
// member's mailbox gets the whole transaction 452), and its outside members are left out, one
// log line each ("Not forwarded to a group's outside member: suspected spam": id, group,
// member, reason "dnsbl ZONE" or "dmarc p=quarantine of DOMAIN"). Forwarding it would pass
// mail we judged suspicious on to other servers under our name, and with our group's bounce
// address. A DNSBL with action Reject, and DMARC p=reject, refuse mail to groups as to mailboxes.
//
// # Delivery
//
// Without sender checks (see Authenticity), the message is streamed, never held whole in
// memory, into store.Deliver behind the prepended Received: header (see receivedHeader); the
// store writes every recipient's copy with tmp, fsync, rename, fsync(dir) and returns only when
// all are durable, and the 250 follows (RFC 5321 6.1). Any error while the data arrives (size,
// bare LF, a long line, a lost connection, a timeout) reaches the store as a read error, and the
// store then leaves no copy anywhere (with checks, the spool is abandoned before the store). Data keeps
// moving the connection's read deadline while bytes arrive, so the read timeout (5 minutes, RFC
// 5321 4.5.3.2.7) is an idle timeout and a large message is not cut off.
//
// Bare LF is refused rather than repaired: lines ending in LF alone are how SMTP smuggling hides
// a second message, and no correct client sends them. go-smtp accepts bare LF at the end of
// command lines; that is harmless there.
//
// # Out-of-office replies (Options.AutoReply)
//
// When a message is stored straight into mailboxes (no remote recipient) and one of the
// mailboxes whose copy went into the INBOX has an autoReply, the header is kept as the data
// passes into the store (at most 64 KiB, no second read), and once the delivery has succeeded
// the sender, those mailboxes and the header (our trace fields on top) go to the
// autoreply.Responder, which decides and queues the replies in the background: a reply never
// delays or fails the 250. Copies that went into Junk, refused messages and mail for the queue
// (answered when the queue delivers it, package delivery) are not handed over here.
//
// # Authenticity (Options.Verifier)
//
// With a msgauth.Verifier, the MX checks the mail of every client outside the trusted networks
// (those are our own applications, as Postfix's mynetworks): SPF starts in the background at
// MAIL; at the end of data the whole message is needed before the reply, so it is received into
// a spool (the first MiB in memory, at most 64 MiB for all messages at once, the rest in an
// unlinked file in Options.SpoolDir) through the same bodyReader (size limit, bare LF, idle
// timeout), then DKIM and DMARC are checked (see package msgauth). A DMARC fail for a From: domain with p=reject is refused with 550 5.7.1 when
// every recipient domain enforces it (config.Domain.IgnoreDMARCReject false, the default): the
// reply is one for the whole transaction, and a domain that chose to accept such mail gets it.
// Otherwise the message is delivered from the spool behind the Authentication-Results field
// (above our Received:, RFC 8601 5). A DNS failure is temperror in that field, never a refusal.
// The "Accepted message" log line gets an auth attribute summing up the results. Submission,
// and clients in trusted networks, are not checked and keep the streamed path.
//
// # Spam defense (MX)
//
// What a Postfix administrator sets up with reject_rbl_client and a Junk folder, declared per
// MailDomain (config.Domain.Antispam, spec.antispam):
//
//   - DNS blocklists (RFC 5782). At the first RCPT for a domain that has lists, the client's
//     address is looked up in each of the domain's lists not asked yet on this connection, all
//     at once (msgauth.Verifier.LookupDNSBL: through the server's DNS cache, 5 s each); the
//     answers are kept for the connection, STARTTLS included (the client's address does not
//     change), so a list is asked at most once per connection. The lookup comes before the mailbox lookup, so a
//     listed client learns nothing of which addresses exist. If a list with action Reject lists
//     the client, the recipient gets 554 5.7.1 "Service unavailable; Client host [IP] blocked
//     using ZONE", with "; " and the list's TXT record appended when it has one (Postfix's
//     reject_rbl_client reply); this counts as a rejected recipient, and recipients in other
//     domains are unaffected. Otherwise, if a list with action Junk lists it, the recipient's
//     copy goes into the mailbox's Junk folder. A failed lookup (SERVFAIL, timeout) leaves the
//     list out, logged: blocklists never refuse mail because DNS is down. An error-code answer
//     (127.255.255.0/24, Spamhaus refusing our query) never counts and is logged once per list.
//     Clients in a trusted network, and submission (authenticated users), are never looked up;
//     nor is anything without Options.Verifier, whose resolver does the lookups.
//   - DMARC p=quarantine (RFC 7489 6.3): a message whose DMARC result asks for quarantine
//     (msgauth.Result.Quarantine: a p=quarantine failure within pct=, or a p=reject failure
//     outside it) goes into every recipient's Junk folder, its Authentication-Results on top.
//     Only messages the checks above see (the MX, clients outside the trusted networks).
//   - Mail to a MailGroup that either check judges suspicious reaches the local members' Junk
//     folders directly and is not forwarded to outside members (see Groups).
//   - iprev (RFC 8601 2.7.3) is checked once per connection from the first checked MAIL on, and
//     recorded in Authentication-Results only.
//
// Junk copies are made with store.DeliverToFolders in the same all-or-nothing delivery as the
// INBOX copies of other recipients (one file, hard links), under the same quota rules: Junk
// counts towards the quota like any folder. A mailbox without a Junk folder (deleted by its
// user) gets one again, subscribed. The "Accepted message" line then says folder=Junk, the
// junk_reason ("dmarc p=quarantine of DOMAIN", "dnsbl ZONE"), and, when only some mailboxes got
// it there, junked=[...]. Counted in kubemail_smtp_messages_junked_total{reason} and
// kubemail_dnsbl_lookups_total{zone,result}.
//
// # Submission
//
// AUTH PLAIN and LOGIN are checked by auth.Authenticator (failures slowed per client, 535 5.7.8).
// The user may send as its primary address, an alias, or a plus-address of either. Remote
// recipients go to the outbound queue; without one (Options.Queue nil) they get 554 5.7.1
// "Outbound delivery is not enabled", a permanent reply so that user agents show the user at
// once rather than retrying. A submitted message missing Date or Message-ID gets them
// (RFC 6409 8.2, 8.3), looked for in the first 256 KiB of header.
//
// Access ends when the administrator takes it away: the session keeps the config.Mailbox its
// AUTH was checked against, and every MAIL, RCPT and DATA/BDAT compares it with the config in
// force at that command (Options.Live, one atomic load, no registry). If that config no longer
// has the mailbox (a deleted Mailbox) or has it with another password hash (a rotated password
// Secret), the command gets 421 4.7.0 and the connection closes (RFC 5321 3.8); the
// transaction under way is dropped, so nothing sent after the reload gets a 250. At DATA the
// message is read and dropped before the 421, so the client sees the reply. A message whose
// data had begun arriving when the reload came is finished and delivered as any other, and mail
// that had its 250 before the reload is not touched. Aliases and quota may change without
// ending a session. One log line ("Revoked session": user, reason, command) per session and
// kubemail_sessions_revoked_total{server="submission",reason="removed"|"credentials"}. IMAP
// sessions are ended by the reload itself, since an IDLE client sends no command (package imap).
//
// # Logs
//
// One line per accepted message ("Accepted message": id, from, rcpts, mailboxes, size, duration,
// and for checked mail auth and, when it went into Junk, folder and junk_reason),
// one per refused sender, recipient or message ("Rejected ...": id, code, reason), one per login
// failure. The id is the queue-style ID of the transaction, also in the Received: header and in
// the 250 reply.
//
// # Known limits
//
//   - go-smtp builds the EHLO reply from Server.MaxMessageBytes, which is fixed when the server
//     is made: a reload that raises the largest domain limit is advertised (and allowed by
//     go-smtp's own DATA check) after a restart; lower limits apply at once.
//   - go-smtp's DATA reader refuses a message of exactly the advertised SIZE (it allows one byte
//     less); BDAT allows exactly SIZE.
//   - go-smtp needs a domain in every address, so "RCPT TO:<postmaster>" (RFC 5321 4.5.1) gets
//     501; "postmaster@<our domain>" works when a mailbox or alias has it.
//   - HELO (not EHLO) clients are recorded with ESMTP in Received:, go-smtp does not tell which.
//   - go-smtp answers AUTH before STARTTLS with 523 5.7.10 (RFC 4954 would have 538 5.7.11);
//     AUTH is not advertised there, so well-behaved clients never see it.
//   - go-smtp counts line lengths on the raw connection, BDAT chunks included, so a chunk with
//     a line over 2000 octets ends the connection (500 5.4.0) as a long DATA line does.
//   - go-smtp v0.25.1 ends a BDAT chunk early without an error when the connection drops inside
//     it. Data catches this (peerClosed) and refuses the message, so it is never stored cut
//     short; on platforms without MSG_PEEK (not unix) this check is off.
//   - go-smtp's Server.Close does not close a listener whose Serve has not started running yet.
//   - There is no limit on concurrent connections here; each costs one goroutine and a few KiB
//     until the idle timeout. The listener is the place for one (the cmd owns it).
package smtp
