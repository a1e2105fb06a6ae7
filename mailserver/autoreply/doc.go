// Package autoreply sends a mailbox's out-of-office replies (config.Mailbox.AutoReply, the
// Mailbox's spec.autoReply): what RFC 3834 asks of automatic responders, with the care Sieve
// vacation implementations take (RFC 5230).
//
// # When a reply is sent
//
// The receiving paths call Responder.Delivered after a message is stored: the MX (package
// smtp) for the mailboxes whose INBOX got it, after the 250 is decided, and the queue's local
// delivery (package delivery) for the mailboxes it delivered into. Mail the MX put into Junk,
// or refused, never reaches the hook. The work runs on a goroutine of its own: a reply never
// delays or fails a delivery. For each mailbox with an autoReply, the first rule that matches
// suppresses the reply, counted under its reason:
//
//	outside_window     now is before spec.autoReply.start or at/after end
//	null_sender        the envelope sender is <> (RFC 3834 2, RFC 5230 4.5)
//	system_sender      the envelope sender is MAILER-DAEMON, postmaster, LISTSERV, majordomo,
//	                   owner-*, *-request, *-bounces (or +bounces), *-owner, or noreply-like
//	                   (noreply, no-reply, do-not-reply, donotreply, ...)
//	own_address        the envelope sender is an address of the mailbox itself
//	auto_submitted     Auto-Submitted other than "no" (RFC 3834 5), or Microsoft's
//	                   X-Auto-Response-Suppress with OOF or All
//	list               List-Id, List-Unsubscribe or List-Post (RFC 2369, 2919)
//	precedence         Precedence bulk, list or junk
//	not_addressed      none of the mailbox's addresses (aliases and plus-addresses count) is in
//	                   To or Cc: Bcc copies and list copies go unanswered (RFC 3834 2, RFC 5230 4.5)
//	already_replied    this sender got a reply from this mailbox within spec.autoReply.interval
//	busy               more than MaxInFlight replies were being worked on (a flood; logged)
//
// Otherwise the reply is sent, and "sent" counted; a failure to queue it is "failed".
//
// # The reply
//
// From the mailbox's primary address, To the envelope sender (RFC 3834 3.2.1: the Return-Path),
// Subject spec.autoReply.subject or "Auto: " and the original subject (RFC 3834 3.1.5),
// In-Reply-To and References from the original's Message-ID (RFC 3834 3.1.4, RFC 5322 3.6.4),
// "Auto-Submitted: auto-replied" (RFC 3834 5), "X-Auto-Response-Suppress: All" (so Exchange
// does not answer it), Date, a Message-ID of ours, and the body as text/plain; charset=utf-8,
// quoted-printable. It is put into the outbound queue (Options.Queue) with the null envelope
// sender (RFC 3834 3.3), so it cannot bounce back, and is DKIM-signed, retried and delivered
// (locally too, for a sender of ours) like any queued mail.
//
// # Memory (on disk)
//
// Who was answered is kept per mailbox in Dir/<mailbox address, path-escaped>.json:
//
//	{"handle":"<hex>","replied":{"<sender, lower case>":<Unix seconds>, ...}}
//
// handle is a hash of the reply's subject and body: a changed reply starts afresh (the Sieve
// vacation :handle rule, RFC 5230 4.2). Entries older than the interval are dropped whenever
// the file is written, and at most MaxSenders are kept (the oldest go first). The file is
// replaced atomically (internal/durable) before the reply is queued, so a restart does not
// answer the same sender again; if queueing fails the entry is taken back. A damaged file is
// logged and treated as empty.
//
// One log line per decision: "Sent an automatic reply" (mailbox, to, id) or "Suppressed an
// automatic reply" (mailbox, from, reason), and kubemail_autoreplies_total{result}.
package autoreply
