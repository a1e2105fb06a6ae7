// Package queue is the outbound mail queue: a durable spool on the data volume, delivery
// workers that retry with backoff, and the delivery status notifications (bounces) the senders
// get back.
//
// # On-disk format
//
// The queue lives in one directory, <data>/queue:
//
//	msg/<id>             the queued message: its envelope header (below), then the message as
//	                     it will be sent: the Received: header (prefix) and the body as
//	                     received, CRLF line ends; written once, never changed
//	meta/<id>.json       the metadata record (below), written only once an attempt has changed
//	                     it from the initial record; then rewritten after every attempt
//	tmp/                 files being written; emptied at start-up
//	quarantine/          damaged entries moved aside at start-up, for the administrator
//
// <id> is the queue ID: 13 hex digits of the arrival time in microseconds and 8 of a counter
// started at a random value, e.g. "6148A2F3C08C1A3F09B2C"; IDs sort by arrival.
//
// The envelope header is the line "kubemail-queue 1 <len>\n" (format version 1) followed by
// <len> bytes of JSON ending in a newline:
//
//	{"id":"…", "from":"alice@a.test", "arrival":"2026-11-26T10:00:00.123456789Z",
//	 "rcpts":["bob@b.test","carol@c.test"], "dkim":"DKIM-Signature: v=1; …\r\n"}
//
// "dkim", present when Options.Signer signed the message at enqueue (messages up to
// SignInMemory), is the DKIM-Signature field sent in front of the message to other servers;
// the metadata record carries it on.
// It holds the message's initial record: every recipient pending, no attempt yet, due at once.
// The size is not in it (the header is written before the body is read): it is the file's
// length less the header's. Delivery and notices read the message from the header's end.
//
// A message is in the queue exactly when msg/<id> is. Enqueue writes it as one file: with
// O_TMPFILE, fsync, link into msg/ (or tmp/<id>, fsync, rename into msg/ where O_TMPFILE is not
// supported), then an fsync of msg/ shared with the concurrent Enqueues (group commit,
// durable.GroupSync); it returns, and the SMTP server replies 250, only then: one file fsync
// and one shared directory fsync per message. A record is written as tmp/<id>.json, fsync,
// rename over meta/<id>.json, fsync of meta/ (shared). A message leaves the queue by unlinking
// msg/<id> and fsyncing msg/ (shared), then unlinking its record, if it has one.
//
// The metadata record is one JSON object:
//
//	{"version":1, "id":"…", "from":"alice@a.test", "arrival":"2026-11-26T10:00:00Z",
//	 "size":1234, "attempts":2, "nextAttempt":"…", "lastAttempt":"…", "delayNotified":false, "dkim":"…",
//	 "rcpts":[{"addr":"bob@b.test", "state":"pending", "code":451, "status":"4.4.1",
//	           "reply":"…", "remoteMTA":"mx.b.test", "at":"…", "notified":false}]}
//
// state is "pending" (to be tried again), "delivered" or "failed" (permanently, or expired);
// code/status/reply/remoteMTA are the last result; notified says the sender has had the bounce
// for a failed recipient. "from" is "" for a bounce (the null reverse-path).
//
// # Recovery
//
// Open removes tmp/, then reads every message file. Its record is meta/<id>.json when there is
// one (it is newer than the envelope header), else the envelope header. A message file whose
// header does not parse or whose record does not parse, names another ID, has no recipients or
// an unknown state, is moved into quarantine/ (with its record when there is one) and logged as
// an error; the server starts anyway. A record without a message file is what a removal cut
// short by a crash leaves: it is deleted, with a warning. A message file made durable just
// before a crash that kept the 250 from the client is delivered, and the client, which had no
// reply, may send it again: the duplicate every SMTP server risks there (RFC 1047).
//
// There are no deployed queues yet, so the format before the envelope header (a record written
// by every Enqueue and message files without a header) is not read: such message files are
// quarantined.
//
// # Retry policy (RetryPolicy; RelayPolicy spec.retry)
//
// A new message is tried at once. After a temporary failure of some recipient (a 4xx reply, a
// refused or lost connection, a timeout, a DNS failure) attempt n+1 follows attempt n after
// InitialInterval·2^(n-1) capped at MaxInterval, less a random jitter of up to a quarter so
// retries of many messages spread out. The defaults are Postfix-like: 5 min, 10, 20, 40, 80,
// 160, then every 4 h (Postfix: minimal_backoff_time 300 s, maximal_queue_lifetime 5 d). A
// permanent failure (a 5xx reply, a null MX, a domain that does not exist) is never retried.
// Recipients already delivered are never tried again; each attempt takes the pending ones. When
// Run's context ends, no new attempt starts and those under way get DrainTimeout (15 s) to
// finish, since one cut off after the remote server took the message would be sent again after
// the restart. An attempt cut short when the drain time is up is not counted, keeps only the
// final results it got, and the message is tried at once after the restart. RetryNow makes a message due now;
// SetRetryPolicy changes the policy on a config reload.
//
// A message still pending Lifetime (default 120 h, 5 days) after arrival fails: the last attempt
// is scheduled at the expiry time, and its pending recipients then fail with status 5.4.7
// (delivery time expired, RFC 3463) and the last reply as the diagnostic.
//
// # Notifications (RFC 3464, package dsn)
//
// After an attempt, recipients that failed and are not yet notified get one failure notice
// (Action: failed) to the envelope sender. When a message is still pending DelayWarningAfter
// (default 4 h; 0 turns it off) after arrival, the sender gets one delay notice (Action: delayed)
// for the pending recipients. A notice to a sender that is one of our mailboxes (config.Live) is
// written straight into its INBOX through Options.Local; any other sender's notice is queued here
// as a message with the null sender. A message with the null sender never causes a notice (RFC
// 5321 4.5.5, RFC 3464 5.1): its failures are only logged. Delete (the administrator's) sends
// none. A crash between a notice and the record update can send the notice twice; it never
// loses one. Likewise a crash between a remote 250 and the record update delivers twice.
//
// # Metrics and administration
//
// Collector gives the gauges (messages, in flight, pending recipients, oldest message age) at
// each scrape; attempts per recipient by result, expiries, enqueued messages and notices sent
// are counted in the package variables of mailserver/metrics. `kubemail queue` lists, retries
// and deletes through the running server's admin socket (package admin), which calls List,
// RetryNow and Delete.
package queue
