package smtp

import (
	"io"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/metrics"
)

// Rcpt checks, before the recipient, that the user's access still holds (see checkAccess).
func (s *submissionSession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	if err := s.checkAccess("RCPT", nil); err != nil {
		return err
	}
	return s.session.Rcpt(to, opts)
}

// Data checks, before the message is taken, that the user's access still holds (see
// checkAccess).
func (s *submissionSession) Data(r io.Reader) error {
	if err := s.checkAccess("DATA", r); err != nil {
		return err
	}
	return s.session.Data(r)
}

// checkAccess ends the session with 421 4.7.0 when the config in force no longer has the
// authenticated user's mailbox, or has it with another password hash than the one the login was
// checked against: "delete the user" or "rotate the password" cuts off a session that logged in
// before (see Submission in the package doc). The transaction under way is dropped, the read
// side of the connection is shut so that go-smtp ends it after the reply, and whatever the
// client pipelined after the command gets no 250 (hangUp). message, at DATA, is the message on
// its way: it is read and dropped first, so the client is reading when the 421 comes.
func (s *submissionSession) checkAccess(command string, message io.Reader) error {
	user := s.user
	if user == nil {
		return nil // MAIL answers 530; go-smtp calls Rcpt and Data only after a MAIL
	}
	reason := s.b.opts.Live.Load().Revocation(user.Address, user.PasswordHash)
	if reason == "" {
		return nil
	}
	s.mu.Lock()
	first := !s.revoked
	s.revoked, s.hangUp, s.tx = true, true, nil
	s.mu.Unlock()
	if first {
		metrics.SMTPRejected(s.b.role.String(), stages[command], errRevoked)
		metrics.SessionsRevoked.WithLabelValues(s.b.role.String(), reason).Inc()
		s.log.Info("Revoked session", "user", user.Address, "reason", reason, "command", command, "code", errRevoked.Code)
	}
	if message != nil {
		_, _ = io.Copy(io.Discard, message)
	}
	closeRead(s.conn.Conn())
	return errRevoked
}

// stages name the commands checkAccess refuses as kubemail_smtp_rejections_total does.
var stages = map[string]string{"MAIL": "sender", "RCPT": "recipient", "DATA": "message"}
