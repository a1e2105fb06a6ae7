// Package dsn writes delivery status notifications: the bounce and delay messages the outbound
// queue sends back to a sender (RFC 3464), as Postfix lays them out.
//
// A notification is a multipart/report; report-type=delivery-status message (RFC 6522) of three
// parts:
//
//  1. text/plain: what happened, for the person reading it;
//  2. message/delivery-status: one per-message block (Reporting-MTA, X-Kubemail-Queue-ID,
//     Arrival-Date) and one block per recipient (Final-Recipient, Action, Status, Remote-MTA,
//     Diagnostic-Code, Last-Attempt-Date, and Will-Retry-Until for delays), RFC 3464 2.2 and 2.3;
//  3. text/rfc822-headers: the header of the original message (RFC 6522 4), never its body, so a
//     bounce does not carry the content back (nor any large attachment).
//
// The notification is sent with the null reverse-path (RFC 5321 4.5.5) and carries
// Auto-Submitted: auto-replied (RFC 3834 5), so no notification is ever sent about it.
package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
)

// Action is the RFC 3464 2.3.3 action of one recipient.
type Action string

const (
	Failed  Action = "failed"
	Delayed Action = "delayed"
)

// Recipient is the fate of one recipient.
type Recipient struct {
	Address string // the envelope recipient, "bob@b.test"
	Action  Action
	// Status is the RFC 3463 enhanced status code, "5.1.1".
	Status string
	// RemoteMTA is the host name of the server that gave the reply, or "" when none did.
	RemoteMTA string
	// Diagnostic is the reply of the remote server ("550 5.1.1 No such user"), or the local
	// reason when no server replied ("connect to 192.0.2.1:25: connection refused").
	Diagnostic string
	// DiagnosticIsSMTP says the diagnostic is an SMTP reply (diagnostic-type "smtp"); else it is
	// written as "X-Kubemail; ...".
	DiagnosticIsSMTP bool
	LastAttempt      time.Time // zero if no attempt was made
	RetryUntil       time.Time // for Delayed: when the queue gives up
}

// Report is one notification.
type Report struct {
	ReportingMTA string    // this server's host name
	QueueID      string    // the queue ID of the original message
	Sender       string    // the original envelope sender: the notification's recipient
	Arrival      time.Time // when the original message was queued
	Recipients   []Recipient
	// OriginalHeader is the original message's header section, as read by ReadHeader.
	OriginalHeader []byte
	Now            time.Time // the notification's Date; zero means time.Now()
}

// MaxHeader is how much of the original header a notification carries.
const MaxHeader = 64 << 10

// ReadHeader returns the header section of a message (up to the empty line, CRLF line ends),
// at most MaxHeader bytes of it, cut at a line end.
func ReadHeader(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, MaxHeader))
	var h bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && err == nil {
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
			if line[len(line)-2] != '\r' {
				line = append(line[:len(line)-1], '\r', '\n')
			}
			h.Write(line)
		}
		if err == io.EOF {
			break // a partial last line is dropped
		}
		if err != nil {
			return nil, fmt.Errorf("dsn: reading the original header: %w", err)
		}
	}
	return h.Bytes(), nil
}

// Build writes the notification message, CRLF line ends, ready to be queued with a null sender.
func Build(r Report) []byte {
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	boundary := randomToken() + "/" + r.ReportingMTA
	delay := true
	for _, rc := range r.Recipients {
		if rc.Action != Delayed {
			delay = false
		}
	}
	subject := "Undelivered Mail Returned to Sender"
	if delay {
		subject = "Delayed Mail (still being retried)"
	}

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...); b.WriteString("\r\n") }
	w("From: Mail Delivery System <MAILER-DAEMON@%s>", r.ReportingMTA)
	w("To: <%s>", r.Sender)
	w("Subject: %s", subject)
	w("Date: %s", now.Format(time.RFC1123Z))
	w("Message-ID: <%s.%s@%s>", r.QueueID, randomToken(), r.ReportingMTA)
	w("Auto-Submitted: auto-replied") // RFC 3834 5
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;")
	w("\tboundary=\"%s\"", boundary)
	w("")
	w("This is a MIME-encapsulated message.")
	w("")

	// Part 1: for the person.
	w("--%s", boundary)
	w("Content-Description: Notification")
	w("Content-Type: text/plain; charset=utf-8")
	w("")
	w("This is the mail system at host %s.", r.ReportingMTA)
	w("")
	if delay {
		w("Your message could not be delivered yet to the recipients below.")
		w("It is still being retried; you do not need to send it again.")
	} else {
		w("I'm sorry to have to inform you that your message could not")
		w("be delivered to one or more recipients. It's attached below.")
	}
	w("")
	for _, rc := range r.Recipients {
		w("<%s>: %s", rc.Address, oneLine(rc.Diagnostic))
		if rc.Action == Delayed && !rc.RetryUntil.IsZero() {
			w("    (retried until %s)", rc.RetryUntil.UTC().Format(time.RFC1123Z))
		}
	}
	w("")

	// Part 2: for the machine, RFC 3464 2.
	w("--%s", boundary)
	w("Content-Description: Delivery report")
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", r.ReportingMTA)
	w("X-Kubemail-Queue-ID: %s", r.QueueID)
	if !r.Arrival.IsZero() {
		w("Arrival-Date: %s", r.Arrival.Format(time.RFC1123Z))
	}
	for _, rc := range r.Recipients {
		w("")
		w("Final-Recipient: rfc822; %s", rc.Address)
		w("Action: %s", rc.Action)
		w("Status: %s", rc.Status)
		if rc.RemoteMTA != "" {
			w("Remote-MTA: dns; %s", rc.RemoteMTA)
		}
		if rc.Diagnostic != "" {
			kind := "X-Kubemail"
			if rc.DiagnosticIsSMTP {
				kind = "smtp"
			}
			w("Diagnostic-Code: %s; %s", kind, oneLine(rc.Diagnostic))
		}
		if !rc.LastAttempt.IsZero() {
			w("Last-Attempt-Date: %s", rc.LastAttempt.Format(time.RFC1123Z))
		}
		if rc.Action == Delayed && !rc.RetryUntil.IsZero() {
			w("Will-Retry-Until: %s", rc.RetryUntil.Format(time.RFC1123Z))
		}
	}
	w("")

	// Part 3: the original header, RFC 6522 4.
	w("--%s", boundary)
	w("Content-Description: Undelivered Message Headers")
	w("Content-Type: text/rfc822-headers")
	w("")
	b.Write(r.OriginalHeader)
	w("")
	w("--%s--", boundary)
	return []byte(b.String())
}

// oneLine folds a possibly multi-line reply into one line for a header field.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return strings.ToUpper(hex.EncodeToString(b[:]))
}
