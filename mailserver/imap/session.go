package imap

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/store"
)

// session is one IMAP connection's state.
type session struct {
	srv    *server
	conn   *imapserver.Conn
	remote net.Addr
	acct   *store.Account // nil until logged in

	// Selected state.
	folder    *store.Folder
	mt        *imapserver.MailboxTracker
	st        *imapserver.SessionTracker
	readOnly  bool
	searchRes imap.UIDSet

	// imapserver runs Idle on a goroutine of its own and, when the connection ends during IDLE
	// (a client gone, a revoked session's BYE), calls Close without waiting for it; idleMu,
	// closed and idling keep the two apart.
	idleMu sync.Mutex
	closed bool
	idling sync.WaitGroup
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

// loginTimeout bounds a login, including the Authenticator's failure delay.
const loginTimeout = time.Minute

// Idle rescans the selected folder this often, for changes made by other processes.
const idleRescanInterval = 10 * time.Second

func (s *session) Close() error {
	if reg := s.srv.opts.Sessions; reg != nil {
		reg.remove(s)
	}
	s.idleMu.Lock()
	s.closed = true
	s.idleMu.Unlock()
	s.idling.Wait() // imapserver closed its stop channel before calling Close: it returns soon
	if s.st != nil {
		s.st.Close()
		s.st = nil
	}
	return nil
}

// Login checks the primary address and password (RFC 9051 6.2.3). imapserver calls it only on a
// TLS connection, also for AUTHENTICATE PLAIN.
func (s *session) Login(username, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	mb, err := s.srv.opts.Auth.Authenticate(ctx, s.remote, username, password)
	if err != nil {
		if errors.Is(err, auth.ErrInvalidCredentials) {
			metrics.IMAPLogins.WithLabelValues(metrics.ResultFailed).Inc()
			s.srv.log.Info("Rejected IMAP login", "remote", s.remote.String(), "username", username)
			return imapserver.ErrAuthFailed
		}
		metrics.IMAPLogins.WithLabelValues(metrics.ResultError).Inc()
		s.srv.log.Error("Failed to check IMAP login", "remote", s.remote.String(), "error", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Login is not possible now, try again later"}
	}
	acct, err := s.srv.opts.Store.Account(mb.Address)
	if errors.Is(err, store.ErrMailboxRemoved) {
		// The password was checked against a config that still had the mailbox, but it has
		// been removed since (store, Removing a mailbox): the address is no mailbox any more.
		metrics.IMAPLogins.WithLabelValues(metrics.ResultFailed).Inc()
		s.srv.log.Info("Rejected IMAP login", "remote", s.remote.String(), "username", username, "reason", "the mailbox was removed")
		return imapserver.ErrAuthFailed
	}
	if err != nil {
		metrics.IMAPLogins.WithLabelValues(metrics.ResultError).Inc()
		return s.internal("opening mailbox", err)
	}
	if reason := s.register(mb); reason != "" {
		// A reload took the access away after the password was checked (see Sessions.Revoke).
		metrics.IMAPLogins.WithLabelValues(metrics.ResultFailed).Inc()
		s.srv.log.Info("Rejected IMAP login", "remote", s.remote.String(), "username", username, "reason", "the config changed during the login: "+reason)
		return imapserver.ErrAuthFailed
	}
	s.acct = acct
	metrics.IMAPLogins.WithLabelValues(metrics.ResultOK).Inc()
	s.srv.log.Info("Logged in over IMAP", "remote", s.remote.String(), "mailbox", mb.Address)
	return nil
}

// AppendLimit is the largest message APPEND takes: the largest any domain accepts by SMTP.
func (s *session) AppendLimit() uint32 {
	return uint32(min(s.srv.opts.Live.Load().MaxMessageSize(), 1<<32-1))
}

// internal logs a store failure and returns the generic answer for it.
func (s *session) internal(what string, err error) error {
	if errors.Is(err, store.ErrFolderGone) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "Mailbox was deleted or renamed"}
	}
	addr := ""
	if s.acct != nil {
		addr = s.acct.Address()
	}
	s.srv.log.Error("IMAP command failed", "what", what, "mailbox", addr, "remote", s.remote.String(), "error", err)
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error, the administrator can find details in the log"}
}

// folderError turns a store error about a folder into the RFC 5530 response.
func (s *session) folderError(what string, err error) error {
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	switch {
	case errors.Is(err, store.ErrNoFolder):
		return no(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, store.ErrFolderExists):
		return no(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, store.ErrBadFolderName):
		return no(imap.ResponseCodeCannot, "Invalid mailbox name")
	case errors.Is(err, store.ErrHasChildren):
		return no(imap.ResponseCodeHasChildren, "Mailbox has children, delete them first")
	case errors.Is(err, store.ErrInbox):
		return no(imap.ResponseCodeCannot, "INBOX cannot be deleted")
	}
	return s.internal(what, err)
}

// openFolder opens a folder for APPEND, COPY and MOVE, which answer [TRYCREATE] for a missing
// one (RFC 9051 6.3.12).
func (s *session) openFolder(name string) (*store.Folder, error) {
	f, err := s.acct.Folder(name)
	if errors.Is(err, store.ErrNoFolder) || errors.Is(err, store.ErrBadFolderName) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	if err != nil {
		return nil, s.internal("opening folder", err)
	}
	return f, nil
}

func (s *session) Create(name string, _ *imap.CreateOptions) error {
	// RFC 9051 6.3.4: a trailing delimiter declares the intent to hold children; it is dropped.
	name = strings.TrimSuffix(name, string(store.Delimiter))
	if err := s.acct.Create(name); err != nil {
		return s.folderError("creating folder", err)
	}
	return nil
}

func (s *session) Delete(name string) error {
	if err := s.acct.Delete(name); err != nil {
		return s.folderError("deleting folder", err)
	}
	return nil
}

func (s *session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	if err := s.acct.Rename(oldName, newName); err != nil {
		return s.folderError("renaming folder", err)
	}
	return nil
}

func (s *session) Subscribe(name string) error {
	if err := s.acct.Subscribe(name); err != nil {
		return s.folderError("subscribing", err)
	}
	return nil
}

func (s *session) Unsubscribe(name string) error {
	if err := s.acct.Unsubscribe(name); err != nil {
		return s.folderError("unsubscribing", err)
	}
	return nil
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	// RFC 2342: one personal namespace.
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: store.Delimiter}}}, nil
}

func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	f, err := s.acct.Folder(name)
	if err != nil {
		return nil, s.folderError("status", err)
	}
	return s.statusData(f, options)
}

func (s *session) statusData(f *store.Folder, options *imap.StatusOptions) (*imap.StatusData, error) {
	st, err := f.Status()
	if err != nil {
		return nil, s.internal("status", err)
	}
	data := &imap.StatusData{Mailbox: f.Name()}
	if options.NumMessages {
		data.NumMessages = &st.Messages
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		data.NumUnseen = &st.Unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &st.Deleted
	}
	if options.Size {
		data.Size = &st.Size
	}
	if options.NumRecent {
		zero := uint32(0)
		data.NumRecent = &zero
	}
	return data, nil
}

func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	f, err := s.openFolder(name)
	if err != nil {
		return nil, err
	}
	quota := s.quota()
	if !s.fitsQuota(quota, r.Size()) {
		return nil, s.overQuota("APPEND", r.Size())
	}
	uidValidity, uid, err := f.Append(r, fromFlags(options.Flags), options.Time, quota)
	if isOverQuota(err) {
		return nil, s.overQuota("APPEND", r.Size())
	}
	if err != nil {
		return nil, s.internal("appending", err)
	}
	return &imap.AppendData{UIDValidity: uidValidity, UID: imap.UID(uid)}, nil
}

// Poll picks up changes to the selected folder (new mail, other processes' changes) and writes
// the updates this session has not seen (RFC 9051 7).
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.folder == nil {
		return nil
	}
	if err := s.folder.Refresh(); err != nil && !errors.Is(err, store.ErrFolderGone) {
		s.srv.log.Warn("Failed to rescan folder", "mailbox", s.acct.Address(), "folder", s.folder.Name(), "error", err)
	}
	return s.st.Poll(w, allowExpunge)
}

// Idle writes updates as they happen until stop is closed (RFC 2177).
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.idleMu.Lock()
	if s.closed {
		s.idleMu.Unlock()
		return nil
	}
	s.idling.Add(1)
	s.idleMu.Unlock()
	defer s.idling.Done()
	folder, st := s.folder, s.st
	if folder == nil {
		<-stop
		return nil
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(idleRescanInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				folder.Refresh()
			case <-done:
				return
			}
		}
	}()
	return st.Idle(w, stop)
}
