package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kubemail/kubemail/internal/durable"
)

// Errors of folder operations; the IMAP server turns them into response codes.
var (
	ErrNoFolder      = errors.New("store: no such folder")
	ErrFolderExists  = errors.New("store: folder already exists")
	ErrBadFolderName = errors.New("store: bad folder name")
	ErrHasChildren   = errors.New("store: folder has children")
	ErrInbox         = errors.New("store: INBOX cannot be deleted")
)

// Delimiter is the IMAP hierarchy delimiter, the Maildir++ one.
const Delimiter = '.'

// specialFolders are created on first use of a mailbox, with their RFC 6154 attributes.
var specialFolders = []struct{ name, use string }{
	{"Drafts", `\Drafts`},
	{"Sent", `\Sent`},
	{"Archive", `\Archive`},
	{"Junk", `\Junk`},
	{"Trash", `\Trash`},
}

// SpecialUse returns the RFC 6154 attribute of a folder name, or "".
func SpecialUse(name string) string {
	for _, sf := range specialFolders {
		if sf.name == name {
			return sf.use
		}
	}
	return ""
}

// Account is the mailbox of one address: its folders and subscriptions. It belongs to one life
// of the mailbox: once RemoveMailbox removed it, every method fails with ErrMailboxRemoved, even
// when a new mailbox with the same address exists by then.
type Account struct {
	s       *Store
	address string
	dir     string
	mb      *mailbox
}

// Account opens the mailbox of a primary address, creating it on first use with INBOX and the
// special-use folders, all subscribed. It fails with ErrMailboxRemoved while RemoveMailbox is
// removing the mailbox and, after it, while the address is tombstoned (until ReviveMailboxes).
func (s *Store) Account(address string) (*Account, error) {
	dir, err := s.mailboxDir(address)
	if err != nil {
		return nil, err
	}
	a := &Account{s: s, address: strings.ToLower(address), dir: dir}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Under s.mu, RemoveMailbox cannot move the Maildir away between this check and the
	// directories made below: they are made before it moves it, or the check fails.
	if a.mb, err = s.openMailbox(dir, a.address); err != nil {
		return nil, err
	}
	if err := s.ensureMaildir(dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(a.subscriptionsPath()); errors.Is(err, os.ErrNotExist) {
		subs := []string{"INBOX"}
		for _, sf := range specialFolders {
			if err := s.ensureMaildir(a.folderDir(sf.name)); err != nil {
				return nil, err
			}
			if err := touchMaildirFolder(a.folderDir(sf.name)); err != nil {
				return nil, err
			}
			subs = append(subs, sf.name)
		}
		if err := a.writeSubscriptions(subs); err != nil {
			return nil, err
		}
		s.logger.Info("Created mailbox", "mailbox", a.address)
	}
	return a, nil
}

// Address returns the account's primary address.
func (a *Account) Address() string { return a.address }

// lock takes the store's folder lock for an operation on the account's folders. It fails, not
// locked, with ErrMailboxRemoved once RemoveMailbox began removing the mailbox; RemoveMailbox
// moves the Maildir away under the same lock, so an operation that got it finishes first.
func (a *Account) lock() error {
	a.s.mu.Lock()
	if a.mb.isRemoved() {
		a.s.mu.Unlock()
		return ErrMailboxRemoved
	}
	return nil
}

// NormalizeName checks an IMAP folder name (UTF-8) and returns it with INBOX in upper case.
// A name is usable on disk if its levels are non-empty, contain no "/" and no control
// characters (RFC 9051 5.1).
func NormalizeName(name string) (string, error) {
	if first, _, _ := strings.Cut(name, string(Delimiter)); strings.EqualFold(first, "INBOX") {
		name = "INBOX" + name[len(first):]
	}
	if name == "" || len(name) > 200 || !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: %q", ErrBadFolderName, name)
	}
	for _, level := range strings.Split(name, string(Delimiter)) {
		if level == "" {
			return "", fmt.Errorf("%w: %q", ErrBadFolderName, name)
		}
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' || r == '*' || r == '%' {
			return "", fmt.Errorf("%w: %q", ErrBadFolderName, name)
		}
	}
	return name, nil
}

func (a *Account) folderDir(name string) string {
	if name == "INBOX" {
		return a.dir
	}
	return filepath.Join(a.dir, "."+name)
}

func (a *Account) exists(name string) bool {
	fi, err := os.Stat(filepath.Join(a.folderDir(name), "cur"))
	return err == nil && fi.IsDir()
}

// touchMaildirFolder creates the "maildirfolder" marker Courier and Dovecot expect in a folder.
func touchMaildirFolder(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "maildirfolder"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("store: creating folder marker: %w", err)
	}
	return f.Close()
}

// FolderInfo describes a folder for LIST.
type FolderInfo struct {
	Name        string
	SpecialUse  string // RFC 6154 attribute or ""
	Subscribed  bool
	HasChildren bool
}

// List returns every folder, INBOX first, then sorted by name.
func (a *Account) List() ([]FolderInfo, error) {
	if a.mb.isRemoved() {
		return nil, ErrMailboxRemoved
	}
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return nil, fmt.Errorf("store: listing folders: %w", err)
	}
	names := []string{"INBOX"}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || len(n) < 2 || n[0] != '.' || n == ".." {
			continue
		}
		if _, err := NormalizeName(n[1:]); err == nil && a.exists(n[1:]) {
			names = append(names, n[1:])
		}
	}
	sort.Strings(names[1:])
	subs, err := a.Subscriptions()
	if err != nil {
		return nil, err
	}
	subscribed := make(map[string]bool, len(subs))
	for _, s := range subs {
		subscribed[s] = true
	}
	out := make([]FolderInfo, len(names))
	for i, n := range names {
		out[i] = FolderInfo{Name: n, SpecialUse: SpecialUse(n), Subscribed: subscribed[n]}
		prefix := n + string(Delimiter)
		for _, m := range names {
			if strings.HasPrefix(m, prefix) {
				out[i].HasChildren = true
				break
			}
		}
	}
	return out, nil
}

// Folder opens a folder by IMAP name.
func (a *Account) Folder(name string) (*Folder, error) {
	name, err := NormalizeName(name)
	if err != nil {
		return nil, err
	}
	if err := a.lock(); err != nil {
		return nil, err
	}
	defer a.s.mu.Unlock()
	key := folderKey{a.address, name}
	if f := a.s.folders[key]; f != nil {
		return f, nil
	}
	if !a.exists(name) {
		return nil, fmt.Errorf("%w: %q", ErrNoFolder, name)
	}
	f := &Folder{s: a.s, mb: a.mb, address: a.address, name: name, dir: a.folderDir(name)}
	if err := a.s.ensureMaildir(f.dir); err != nil {
		return nil, err
	}
	if err := f.load(); err != nil {
		return nil, err
	}
	a.s.folders[key] = f
	return f, nil
}

// Create creates a folder and any missing parents (RFC 9051 6.3.4).
func (a *Account) Create(name string) error {
	name, err := NormalizeName(name)
	if err != nil {
		return err
	}
	if err := a.lock(); err != nil {
		return err
	}
	defer a.s.mu.Unlock()
	return a.createLocked(name)
}

func (a *Account) createLocked(name string) error {
	if name == "INBOX" || a.exists(name) {
		return fmt.Errorf("%w: %q", ErrFolderExists, name)
	}
	levels := strings.Split(name, string(Delimiter))
	for i := 1; i <= len(levels); i++ {
		n := strings.Join(levels[:i], string(Delimiter))
		if n == "INBOX" || a.exists(n) {
			continue
		}
		dir := a.folderDir(n)
		if err := a.s.ensureMaildir(dir); err != nil {
			return err
		}
		if err := touchMaildirFolder(dir); err != nil {
			return err
		}
	}
	return nil
}

// Delete deletes a folder with its messages. INBOX and folders with children cannot be deleted.
func (a *Account) Delete(name string) error {
	name, err := NormalizeName(name)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return ErrInbox
	}
	if err := a.lock(); err != nil {
		return err
	}
	defer a.s.mu.Unlock()
	if !a.exists(name) {
		return fmt.Errorf("%w: %q", ErrNoFolder, name)
	}
	if a.hasChildren(name) {
		return fmt.Errorf("%w: %q", ErrHasChildren, name)
	}
	dir := a.folderDir(name)
	c, err := a.s.beginCharge(a.mb, 0, 0)
	if err != nil {
		return err
	}
	// Move it out of sight first, so a crash never leaves half a folder.
	trash := filepath.Join(a.dir, "tmp", "deleted-"+uniqueBase(time.Now()))
	if err := os.Rename(dir, trash); err != nil {
		c.end(false, 0, 0)
		return fmt.Errorf("store: deleting folder: %w", err)
	}
	a.dropLocked(name)
	// What the quota no longer counts is what was moved away (mail that raced in is in it too).
	freed, err := countFolder(trash)
	c.end(err == nil, -freed.Bytes, -freed.Messages)
	if err := os.RemoveAll(trash); err != nil {
		a.s.logger.Warn("Failed to remove deleted folder", "mailbox", a.address, "folder", name, "error", err)
	}
	return durable.SyncDir(a.dir)
}

func (a *Account) hasChildren(name string) bool {
	matches, _ := filepath.Glob(filepath.Join(a.dir, "."+globEscape(name)+".*"))
	for _, m := range matches {
		if fi, err := os.Stat(filepath.Join(m, "cur")); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// dropLocked forgets the loaded Folder of name (and its children), marking it gone for the
// sessions that hold it.
func (a *Account) dropLocked(name string) {
	for key, f := range a.s.folders {
		if key.address == a.address && (key.name == name || strings.HasPrefix(key.name, name+string(Delimiter))) {
			f.mu.Lock()
			f.gone = true
			f.mu.Unlock()
			delete(a.s.folders, key)
		}
	}
	a.s.forgetMaildir(a.folderDir(name))
}
