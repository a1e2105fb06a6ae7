// Package queue is the outbound mail queue: a durable spool on the data volume, delivery
// workers that retry with backoff, and the delivery status notifications (bounces) the senders
// get back.
//
// # On-disk format
//
// The queue lives in one directory, <data>/queue:
//
//	msg/<id>             the message as it will be sent: the Received: header (prefix) and the
//	                     body as received, CRLF line ends; written once, never changed
//	meta/<id>.json       the metadata record (below), rewritten after every delivery attempt
//	tmp/                 files being written; emptied at start-up
//	quarantine/          damaged entries moved aside at start-up, for the administrator
//
// <id> is the queue ID: 13 hex digits of the arrival time in microseconds and 8 of a counter
// started at a random value, e.g. "6148A2F3C08C1A3F09B2C"; IDs sort by arrival.
//
// Every file is made by writing tmp/<name>, fsync, rename into place, fsync of the directory.
// Enqueue writes msg/<id> that way first and meta/<id>.json second, and returns (and the SMTP
// server replies 250) only when both are durable: a message is in the queue exactly when its
// metadata record is. A record is replaced the same way; a message leaves the queue by
// unlinking its record (fsync meta/), then its body.
//
// The metadata record is one JSON object:
//
//	{"version":1, "id":"…", "from":"alice@a.test", "arrival":"2026-11-26T10:00:00Z",
//	 "size":1234, "attempts":2, "nextAttempt":"…", "lastAttempt":"…", "delayNotified":false,
//	 "rcpts":[{"addr":"bob@b.test", "state":"pending", "code":451, "status":"4.4.1",
//	           "reply":"…", "remoteMTA":"mx.b.test", "at":"…", "notified":false}]}
//
// state is "pending" (to be tried again), "delivered" or "failed" (permanently, or expired);
// code/status/reply/remoteMTA are the last result; notified says the sender has had the bounce
// for a failed recipient. "from" is "" for a bounce (the null reverse-path).
//
// # Recovery
//
// Open removes tmp/, then reads every record. A record that does not parse, names another ID,
// has no recipients or an unknown state, or whose body is missing, is moved into quarantine/
// (with its body when there is one) and logged as an error; the server starts anyway. A body
// without a record is an Enqueue that never returned: no 250 was sent for it, so it is removed.
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
//
// # Not yet
//
// Group commit of directory fsyncs across concurrent Enqueues.
package queue
