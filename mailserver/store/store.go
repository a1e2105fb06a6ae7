package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
)

// ErrBadAddress is returned for a mailbox address that cannot name a directory safely.
var ErrBadAddress = errors.New("store: bad mailbox address")

// Store is the set of mailboxes under one data directory. It is safe for concurrent use.
type Store struct {
	root   string // <data>/mail
	logger *slog.Logger

	dirSyncs durable.GroupSync // group commit of new/ and cur/ directory fsyncs
	madeDirs sync.Map          // mailbox/folder directory -> struct{}: its Maildir exists and is durable

	uidvMu sync.Mutex // guards the uidvalidity file

	mu      sync.Mutex            // guards folders and folder creation, renaming and deletion
	folders map[folderKey]*Folder // folders loaded so far

	mboxMu sync.Mutex          // guards mboxes and tombs (not the mailboxes: each has its own lock)
	mboxes map[string]*mailbox // mailbox directory -> its current life (count, operations)
	tombs  map[string]struct{} // mailbox directories RemoveMailbox removed and no ReviveMailboxes revived

	removeMu sync.Mutex // one RemoveMailbox at a time
}

type folderKey struct {
	address string // primary address, lower case
	name    string // IMAP name, "INBOX" for the root
}

// Open opens the store whose mail lives under dataDir/mail, creating that directory if needed.
func Open(dataDir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	root := filepath.Join(dataDir, "mail")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating %s: %w", root, err)
	}
	return &Store{
		root:    root,
		logger:  logger,
		folders: make(map[folderKey]*Folder),
		mboxes:  make(map[string]*mailbox),
		tombs:   make(map[string]struct{}),
	}, nil
}

// mailboxDir returns <root>/<domain>/<local> for a "local@domain" address. Both halves must be
// usable as one path element that is not hidden, so no address can reach outside the store.
func (s *Store) mailboxDir(address string) (string, error) {
	at := strings.LastIndexByte(address, '@')
	if at <= 0 || at == len(address)-1 {
		return "", fmt.Errorf("%w: %q", ErrBadAddress, address)
	}
	local, domain := strings.ToLower(address[:at]), strings.ToLower(address[at+1:])
	for _, part := range []string{local, domain} {
		if strings.HasPrefix(part, ".") || strings.ContainsAny(part, "/\\\x00") || len(part) > 255 {
			return "", fmt.Errorf("%w: %q", ErrBadAddress, address)
		}
	}
	return filepath.Join(s.root, domain, local), nil
}

// ensureMaildir creates dir with cur/, new/ and tmp/ if missing, durably (every created directory
// entry is fsynced through its parent), and remembers that it exists.
func (s *Store) ensureMaildir(dir string) error {
	if _, ok := s.madeDirs.Load(dir); ok {
		return nil
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := mkdirDurable(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	s.madeDirs.Store(dir, struct{}{})
	return nil
}

// forgetMaildir drops dir, everything below it and its Maildir++ children (dir + ".x") from the
// cache of existing Maildirs.
func (s *Store) forgetMaildir(dir string) {
	s.madeDirs.Range(func(k, _ any) bool {
		if p := k.(string); p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) || strings.HasPrefix(p, dir+".") {
			s.madeDirs.Delete(k)
		}
		return true
	})
}

// mkdirDurable creates dir and any missing parents, fsyncing the parent of each directory it
// creates so the new entries survive a crash.
func mkdirDurable(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("store: creating %s: %w", dir, err)
	}
	return durable.SyncDir(parent)
}

// newUIDValidity returns a UIDVALIDITY greater than any this store handed out before, even
// across restarts (RFC 9051 2.3.1.1): the time, or the last value plus one, which is kept in
// <data>/mail/uidvalidity (as Dovecot keeps dovecot-uidvalidity).
func (s *Store) newUIDValidity() uint32 {
	s.uidvMu.Lock()
	defer s.uidvMu.Unlock()
	last, _ := s.lastUIDValidityLocked()
	v := max(uint32(time.Now().Unix()), uint32(last)+1)
	s.recordUIDValidityLocked(v)
	return v
}

// lastUIDValidityLocked reads the last UIDVALIDITY handed out from <data>/mail/uidvalidity.
func (s *Store) lastUIDValidityLocked() (uint64, error) {
	data, err := os.ReadFile(filepath.Join(s.root, "uidvalidity"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(data)), 10, 32)
}

// recordUIDValidityLocked keeps v as the last UIDVALIDITY handed out.
func (s *Store) recordUIDValidityLocked(v uint32) {
	path := filepath.Join(s.root, "uidvalidity")
	if err := durable.Replace(path, path+".tmp", []byte(strconv.FormatUint(uint64(v), 10)+"\n"), 0o600); err != nil {
		s.logger.Error("Failed to record UIDVALIDITY", "error", err)
	}
}
