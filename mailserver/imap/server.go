// Package imap serves the store's mailboxes over IMAP (RFC 9051 IMAP4rev2 and RFC 3501
// IMAP4rev1) with go-imap/v2's imapserver.
//
// # Policies
//
//   - Login (LOGIN, AUTHENTICATE PLAIN) only on a TLS connection: STARTTLS on the plain port, or a
//     listener wrapped in TLS for IMAPS (RFC 8314). Before TLS the server advertises
//     LOGINDISABLED and answers NO [PRIVACYREQUIRED]. The login name is the mailbox's primary
//     address; auth.Authenticator checks the hash and slows down clients that keep failing. A
//     login whose password was checked against a config that still had the mailbox, but whose
//     mailbox the store has removed since (store.ErrMailboxRemoved), gets NO
//     [AUTHENTICATIONFAILED] like a bad password, and no Maildir is made.
//   - Access ends when the administrator takes it away, as `doveadm kick` would: the server
//     registers each logged-in session in Options.Sessions with its mailbox's address and the
//     password hash its login was checked against (never the password). Once a new config is in
//     force, Sessions.Revoke ends every session whose mailbox that config no longer has (a
//     deleted Mailbox, its mail kept or purged) or whose password hash changed (a rotated
//     password Secret) with an untagged BYE (RFC 9051 7.1.5) and closes the connection, in IDLE
//     as in any other state. The BYE never cuts a response in half (it waits for the one being
//     written, at most 10 s, then the connection is closed without it); a command under way
//     finishes on the store, its reply is lost. Sessions of other mailboxes, and changes to
//     aliases or quota, leave sessions alone. Each revocation is logged ("Revoked IMAP
//     session": mailbox, remote, reason) and counted in
//     kubemail_sessions_revoked_total{server="imap",reason="removed"|"credentials"}. A login
//     whose password was checked against the config before is refused (NO
//     [AUTHENTICATIONFAILED]) if, once registered, the config in force no longer agrees: no
//     login slips in between a password check and a Revoke. A plain password in a Secret is
//     hashed once per mailbox and password (auth.NewHasher, and the operator keeps its hashes
//     too), so a reload that leaves a password alone leaves its hash, and its sessions, alone.
//   - One namespace, personal, prefix "" and hierarchy delimiter "." (the Maildir++ one).
//   - Every session on a folder shares one imapserver.MailboxTracker attached to the store's
//     Folder; the store reports each change (delivery, append, flags, expunge, or a change found
//     by rescanning) to it under the folder lock, so sequence numbers stay consistent across
//     sessions, and IDLE reports new mail as soon as it is delivered.
//   - FLAGS, UID, RFC822.SIZE and INTERNALDATE come from memory; ENVELOPE reads only the header;
//     BODY[] and BODY[TEXT] are streamed from the file (sized by the file, so RFC822.SIZE and
//     BODY[] always agree).
//   - Errors from the store reach the client as a NO with a response code (RFC 5530) and generic
//     text; details go to the log.
//   - Quota (config.Mailbox.Quota, from the config in force at each command): an APPEND or COPY
//     that would take the mailbox past it fails with NO [OVERQUOTA] (RFC 5530 3, RFC 9208 4.2) and
//     stores nothing; an APPEND is checked against the literal's size before it is written, and
//     again by the store as it commits. MOVE, EXPUNGE and DELETE are never refused, so a user
//     over quota can always make room (moving to Trash included). Refusals are counted in
//     kubemail_mailbox_quota_refusals_total{server="imap"}. The QUOTA extension itself (RFC 9208
//     GETQUOTA, GETQUOTAROOT) is not offered: go-imap v2.0.0-beta.8's imapserver does not know
//     those commands and has no hook for commands it does not know.
package imap

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	_ "github.com/emersion/go-message/charset" // decode RFC 2047 words in any charset

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/store"
)

// Authenticator checks a login's address and password and returns the mailbox; the server uses
// *auth.Authenticator.
type Authenticator interface {
	Authenticate(ctx context.Context, remote net.Addr, username, password string) (*config.Mailbox, error)
}

var _ Authenticator = (*auth.Authenticator)(nil)

// Options configure the IMAP server.
type Options struct {
	Store  *store.Store
	Live   *config.Live
	Auth   Authenticator
	TLS    *tls.Config // STARTTLS; nil disables it (and so every login on the plain port)
	Logger *slog.Logger
	// Sessions, when set, registers every logged-in session, so that Sessions.Revoke can end
	// those whose access a reload takes away. Nil: sessions last until the client leaves.
	Sessions *Sessions
}

// NewServer returns an IMAP server over the store. Serve it on a plain listener (STARTTLS) and on
// a tls.NewListener for IMAPS.
func NewServer(opts Options) *imapserver.Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := &server{opts: opts, log: opts.Logger}
	return imapserver.New(&imapserver.Options{
		NewSession: srv.newSession,
		Caps: imap.CapSet{
			imap.CapIMAP4rev1:    {},
			imap.CapIMAP4rev2:    {},
			imap.CapNamespace:    {},
			imap.CapUIDPlus:      {},
			imap.CapMove:         {},
			imap.CapESearch:      {},
			imap.CapSearchRes:    {},
			imap.CapListExtended: {},
			imap.CapListStatus:   {},
			imap.CapStatusSize:   {},
			imap.CapChildren:     {},
			imap.CapSpecialUse:   {},
			imap.CapLiteralPlus:  {},
			imap.CapBinary:       {},
		},
		Logger:       logAdapter{opts.Logger},
		TLSConfig:    opts.TLS,
		InsecureAuth: false, // RFC 8314: no passwords in the clear
	})
}

type server struct {
	opts Options
	log  *slog.Logger
}

func (s *server) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	return &session{srv: s, conn: conn, remote: conn.NetConn().RemoteAddr()}, nil, nil
}

// logAdapter sends imapserver's own messages (I/O errors, internal errors) to slog.
type logAdapter struct{ log *slog.Logger }

// A client that drops the connection without LOGOUT is routine, not worth a warning.
func (l logAdapter) Printf(format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	level := slog.LevelWarn
	if strings.Contains(detail, "broken pipe") || strings.Contains(detail, "connection reset by peer") || strings.HasSuffix(detail, "EOF") {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, "IMAP connection reported an error", "detail", detail)
}

// trackerObserver forwards a folder's changes to its mailbox tracker.
type trackerObserver struct {
	mt  *imapserver.MailboxTracker
	log *slog.Logger
}

// guard keeps a tracker panic (an inconsistency) from taking down the process: the store may
// call an observer from a delivery's goroutine.
func (o trackerObserver) guard() {
	if v := recover(); v != nil {
		o.log.Error("Mailbox tracker rejected an update", "panic", v)
	}
}

func (o trackerObserver) Appended(total uint32) {
	defer o.guard()
	o.mt.QueueNumMessages(total)
}

func (o trackerObserver) Expunged(seq uint32) {
	defer o.guard()
	o.mt.QueueExpunge(seq)
}

func (o trackerObserver) FlagsChanged(seq, uid uint32, flags []string, origin any) {
	defer o.guard()
	src, _ := origin.(*imapserver.SessionTracker)
	o.mt.QueueMessageFlags(seq, imap.UID(uid), toFlags(flags), src)
}

func (o trackerObserver) KeywordsDefined(keywords []string) {
	defer o.guard()
	o.mt.QueueMailboxFlags(toFlags(append(store.SystemFlags(), keywords...)))
}

// tracker returns the folder's mailbox tracker, attaching one on first use.
func (s *server) tracker(f *store.Folder) *imapserver.MailboxTracker {
	return f.Attach(func(n uint32) (any, store.Observer) {
		mt := imapserver.NewMailboxTracker(n)
		return mt, trackerObserver{mt: mt, log: s.log}
	}).(*imapserver.MailboxTracker)
}

func toFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, len(flags))
	for i, f := range flags {
		out[i] = imap.Flag(f)
	}
	return out
}

func fromFlags(flags []imap.Flag) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = string(f)
	}
	return out
}
