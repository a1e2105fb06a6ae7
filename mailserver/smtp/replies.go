package smtp

import (
	gosmtp "github.com/emersion/go-smtp"
)

// reply builds a typed SMTP reply. The text is what the client sees; detail goes to the log.
func reply(code int, enhanced gosmtp.EnhancedCode, text string) *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: text}
}

// Replies, with the RFC that picks each code. Enhanced codes are RFC 3463 unless noted.
var (
	// RFC 5321 4.1.4: a second MAIL inside a transaction is a bad sequence.
	errNestedMail = reply(503, gosmtp.EnhancedCode{5, 5, 1}, "Nested MAIL command")
	// RFC 3463 X.1.7: bad sender's mailbox address syntax.
	errBadSender = reply(501, gosmtp.EnhancedCode{5, 1, 7}, "Bad sender address syntax")
	// RFC 3463 X.1.3: bad destination mailbox address syntax.
	errBadRecipient = reply(501, gosmtp.EnhancedCode{5, 1, 3}, "Bad recipient address syntax")
	// RFC 6531 3.5 and RFC 6533 3.7.4: a non-ASCII address needs MAIL ... SMTPUTF8.
	errNeedUTF8 = reply(553, gosmtp.EnhancedCode{5, 6, 7}, "Non-ASCII address requires SMTPUTF8")
	// RFC 5321 3.6.2 (no open relay) and RFC 3463 X.7.1 (delivery not authorized).
	errRelayDenied = reply(554, gosmtp.EnhancedCode{5, 7, 1}, "Relay access denied")
	// Submission only, until the outbound queue exists: see the package doc.
	errNoOutbound = reply(554, gosmtp.EnhancedCode{5, 7, 1}, "Outbound delivery is not enabled: only local recipients are accepted")
	// RFC 5321 4.2.2 550 and RFC 3463 X.1.1: bad destination mailbox address.
	errNoSuchUser = reply(550, gosmtp.EnhancedCode{5, 1, 1}, "No such user here")
	// RFC 5321 4.5.3.1.10 and RFC 3463 X.5.3: too many recipients.
	errTooManyRecipients = reply(452, gosmtp.EnhancedCode{4, 5, 3}, "Too many recipients")
	// RFC 1870 6.1 and RFC 3463 X.3.4: message too big for the system (SIZE= or actual bytes).
	errTooBig = reply(552, gosmtp.EnhancedCode{5, 3, 4}, "Message size exceeds fixed maximum message size")
	// RFC 5321 2.3.8: lines end in CRLF; bare LF is refused as Postfix 3.9 does (smuggling).
	errBareLF = reply(550, gosmtp.EnhancedCode{5, 5, 2}, "Bare LF received: lines must end with CRLF")
	// RFC 5321 4.5.3.1.6: a text line is at most 1000 octets; go-smtp allows twice that.
	errLineTooLong = reply(500, gosmtp.EnhancedCode{5, 5, 2}, "Line too long")
	// RFC 3463 X.2.2: the mailbox is over its quota; "a persistent transient failure", so 452
	// (RFC 5321 4.2.2: insufficient storage) and the sender retries while the user makes room, as
	// Postfix with Dovecot's quota_full_tempfail does.
	errMailboxFull = reply(452, gosmtp.EnhancedCode{4, 2, 2}, "Mailbox full")
	// RFC 3463 X.2.3: a per-mailbox message length limit; a message larger than the whole quota
	// can never be delivered, so this one is permanent (552, RFC 5321 4.2.2).
	errLargerThanQuota = reply(552, gosmtp.EnhancedCode{5, 2, 3}, "Message is larger than the mailbox's quota")
	// RFC 3463 X.3.0 / X.3.1: local trouble the client should retry later.
	errLocalFailure = reply(451, gosmtp.EnhancedCode{4, 3, 0}, "Local delivery failed, try again later")
	errStorageFull  = reply(452, gosmtp.EnhancedCode{4, 3, 1}, "Insufficient system storage, try again later")
	// The client went away or reset the transfer: the reply never reaches it, the log says why.
	errAborted = reply(451, gosmtp.EnhancedCode{4, 4, 2}, "Message transfer aborted")
	// RFC 5321 4.5.3.2.5-6: the data did not keep coming; RFC 3463 X.4.2 bad connection.
	errDataTimeout = reply(421, gosmtp.EnhancedCode{4, 4, 2}, "Timeout waiting for data, closing connection")
	// Too many rejected recipients on one connection (a directory harvest): RFC 5321 4.2.2 421,
	// and the connection is closed, as Postfix's smtpd_hard_error_limit does.
	errShuttingDown  = reply(421, gosmtp.EnhancedCode{4, 3, 2}, "Server shutting down, try again later")
	errTooManyErrors = reply(421, gosmtp.EnhancedCode{4, 7, 0}, "Too many errors, closing connection")

	// RFC 7489 6.6.4 and 10.3: a DMARC p=reject failure is refused during the SMTP
	// transaction, RFC 3463 X.7.1 (delivery not authorized, message refused).
	errDMARCReject = reply(550, gosmtp.EnhancedCode{5, 7, 1}, "Message refused: it fails the DMARC policy (p=reject) of its From: domain")

	// Submission (RFC 6409, RFC 4954).
	errAuthRequired   = reply(530, gosmtp.EnhancedCode{5, 7, 0}, "Authentication required")
	errSenderNotOwned = reply(553, gosmtp.EnhancedCode{5, 7, 1},
		"Sender address is not owned by the authenticated user")
	errAuthTemporary = reply(454, gosmtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure")
	errAuthMalformed = reply(501, gosmtp.EnhancedCode{5, 5, 2}, "Malformed authentication response")
	// The authenticated user's mailbox was removed or its password changed since the login:
	// RFC 5321 3.8 421 (the server closes the transmission channel), RFC 3463 X.7.0 (security).
	errRevoked = reply(421, gosmtp.EnhancedCode{4, 7, 0}, "Your login is no longer valid, closing connection")
)
