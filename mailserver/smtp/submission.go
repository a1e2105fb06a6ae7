package smtp

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// submissionSession is a session on the submission ports (RFC 6409): the MX session plus AUTH
// and the rule that an authenticated user sends only as itself.
type submissionSession struct {
	*session
	revoked bool // checkAccess ended the session; guarded by session.mu
}

// AuthMechanisms are offered in EHLO only once the connection is under TLS: go-smtp hides AUTH
// (and answers the command with 523 5.7.10) before STARTTLS since AllowInsecureAuth is false.
func (s *submissionSession) AuthMechanisms() []string {
	if s.b.opts.Auth == nil {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts a SASL exchange (RFC 4954) checked against the mailbox passwords.
func (s *submissionSession) Auth(mech string) (sasl.Server, error) {
	// No AUTH inside a transaction (RFC 4954 4) needs no check here: MAIL requires AUTH first,
	// and go-smtp answers a second AUTH with 503.
	switch mech {
	case sasl.Plain:
		return saslReplies{sasl.NewPlainServer(func(identity, username, password string) error {
			// RFC 4616 2: we do not act for others, so an authorization identity must be the user.
			if identity != "" && !strings.EqualFold(identity, username) {
				metrics.SMTPAuth.WithLabelValues(s.b.role.String(), metrics.ResultFailed).Inc()
				s.log.Info("Rejected login", "user", username, "reason", "authorization identity differs")
				return gosmtp.ErrAuthFailed
			}
			return s.authenticate(username, password)
		})}, nil
	case sasl.Login:
		return saslReplies{&loginServer{authenticate: s.authenticate}}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (s *submissionSession) authenticate(username, password string) error {
	mb, err := s.b.opts.Auth.Authenticate(s.ctx, s.remote, username, password)
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		metrics.SMTPAuth.WithLabelValues(s.b.role.String(), metrics.ResultFailed).Inc()
		s.log.Info("Rejected login", "user", username, "reason", "invalid credentials")
		return gosmtp.ErrAuthFailed // 535 5.7.8
	case err != nil:
		metrics.SMTPAuth.WithLabelValues(s.b.role.String(), metrics.ResultError).Inc()
		s.log.Warn("Failed checking login", "user", username, "err", err)
		return errAuthTemporary
	}
	s.user = mb
	metrics.SMTPAuth.WithLabelValues(s.b.role.String(), metrics.ResultOK).Inc()
	s.log.Info("Authenticated user", "user", mb.Address)
	return nil
}

// Mail requires AUTH (RFC 6409 4.1: 530 5.7.0) and a sender address that is the user's own
// mailbox, one of its aliases or a plus-address of either (553 5.7.1, RFC 6409 8.1). The null
// sender is refused: bounces come from the server, not from user agents. Past the user's
// sending rate limit it answers 450 4.7.1 (see ratelimit.go). A user whose access a reload has
// taken away gets 421 4.7.0 (checkAccess).
func (s *submissionSession) Mail(from string, opts *gosmtp.MailOptions) error {
	user := s.user
	if user == nil {
		s.logRejected("Rejected sender", nil, from, "", errAuthRequired, "not authenticated")
		return errAuthRequired
	}
	if err := s.checkAccess("MAIL", nil); err != nil {
		return err
	}
	_, err := s.openTransaction(from, opts, func(tx *transaction) error {
		mb := tx.dir.Lookup(from)
		if from == "" || mb == nil || mb.Address != user.Address {
			s.logRejected("Rejected sender", tx, from, "", errSenderNotOwned, "sender not owned by "+user.Address)
			return errSenderNotOwned
		}
		if err := s.checkRate(tx, mb, from); err != nil {
			return err
		}
		tx.user = mb
		return nil
	})
	return err
}

// saslReplies turns the SASL library's plain errors (malformed responses) into 501 5.5.2 rather
// than go-smtp's default 454 "try again", which would invite the client to repeat itself.
type saslReplies struct{ sasl.Server }

func (r saslReplies) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := r.Server.Next(response)
	if err != nil {
		var serr *gosmtp.SMTPError
		if !errors.As(err, &serr) {
			err = errAuthMalformed
		}
	}
	return challenge, done, err
}

// loginServer is the server side of the obsolete but ubiquitous LOGIN mechanism
// (draft-murchison-sasl-login): "Username:", "Password:", with an optional initial response
// carrying the user name.
type loginServer struct {
	authenticate func(username, password string) error
	step         int
	username     string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if response == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.authenticate(l.username, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

// addMissingHeaders reads the header section of a submitted message and adds Date and
// Message-ID after prefix when it lacks them (RFC 6409 8.2, 8.3; RFC 5322 3.6 requires Date and
// recommends Message-ID). Only the header is buffered, at most maxHeaderScan bytes; a header
// longer than that is left alone. The returned reader yields the whole message unchanged.
func addMissingHeaders(prefix []byte, body io.Reader, hostname string, now time.Time) ([]byte, io.Reader) {
	br := bufio.NewReaderSize(body, 4096)
	var hdr []byte
	hasDate, hasID, complete, atLineStart := false, false, false, true
	for len(hdr) < maxHeaderScan {
		line, err := br.ReadSlice('\n')
		hdr = append(hdr, line...)
		if atLineStart && len(line) > 0 {
			if bytes.Equal(line, []byte("\r\n")) {
				complete = true
				break
			}
			switch fieldName(line) {
			case "date":
				hasDate = true
			case "message-id":
				hasID = true
			}
		}
		atLineStart = err == nil
		if err == io.EOF {
			complete = true // a message that is all header
		}
		if err != nil && err != bufio.ErrBufferFull {
			break // a read error is the body reader's to report
		}
	}
	src := io.MultiReader(bytes.NewReader(hdr), br)
	if !complete || hasDate && hasID {
		return prefix, src
	}
	out := make([]byte, 0, len(prefix)+128)
	out = append(out, prefix...)
	if !hasDate {
		out = append(out, "Date: "...)
		out = now.AppendFormat(out, time.RFC1123Z)
		out = append(out, "\r\n"...)
	}
	if !hasID {
		var id [16]byte
		_, _ = rand.Read(id[:])
		out = append(out, "Message-ID: <"...)
		out = hex.AppendEncode(out, id[:])
		out = append(out, '@')
		out = append(out, hostname...)
		out = append(out, ">\r\n"...)
	}
	return out, src
}

// fieldName is the lower-case name of a header field line, or "" for a continuation line or
// one without a colon (RFC 5322 2.2, with the obsolete space before the colon of 4.5).
func fieldName(line []byte) string {
	if line[0] == ' ' || line[0] == '\t' {
		return ""
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || colon > 80 {
		return ""
	}
	return strings.ToLower(string(bytes.TrimRight(line[:colon], " \t")))
}

// Check at compile time that the submission session keeps the MX session's methods.
var _ interface {
	Rcpt(string, *gosmtp.RcptOptions) error
	Data(io.Reader) error
} = (*submissionSession)(nil)
