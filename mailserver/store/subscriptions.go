package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
)

// subscriptions is the file of subscribed names, one a line, as Dovecot keeps it.
const subscriptionsFile = "subscriptions"

func (a *Account) subscriptionsPath() string { return filepath.Join(a.dir, subscriptionsFile) }

// Subscriptions returns the subscribed folder names (they need not exist).
func (a *Account) Subscriptions() ([]string, error) {
	data, err := os.ReadFile(a.subscriptionsPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading subscriptions: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		// Dovecot's newer format starts with a "V\t2" version line and tab-separated levels.
		if line == "" || strings.HasPrefix(line, "V\t") {
			continue
		}
		name, err := NormalizeName(strings.ReplaceAll(line, "\t", string(Delimiter)))
		if err == nil && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

func (a *Account) writeSubscriptions(names []string) error {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte('\n')
	}
	tmp := filepath.Join(a.dir, "tmp", "subscriptions."+uniqueBase(time.Now()))
	if err := durable.Replace(a.subscriptionsPath(), tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("store: writing subscriptions: %w", err)
	}
	return nil
}

// Subscribe adds a folder to the subscriptions (RFC 9051 6.3.7); it must exist.
func (a *Account) Subscribe(name string) error {
	name, err := NormalizeName(name)
	if err != nil {
		return err
	}
	if err := a.lock(); err != nil {
		return err
	}
	defer a.s.mu.Unlock()
	if !a.exists(name) {
		return fmt.Errorf("%w: %q", ErrNoFolder, name)
	}
	subs, err := a.Subscriptions()
	if err != nil || slices.Contains(subs, name) {
		return err
	}
	return a.writeSubscriptions(append(subs, name))
}

// Unsubscribe removes a folder from the subscriptions (RFC 9051 6.3.8); it need not exist.
func (a *Account) Unsubscribe(name string) error {
	name, err := NormalizeName(name)
	if err != nil {
		return err
	}
	if err := a.lock(); err != nil {
		return err
	}
	defer a.s.mu.Unlock()
	subs, err := a.Subscriptions()
	if err != nil {
		return err
	}
	i := slices.Index(subs, name)
	if i < 0 {
		return fmt.Errorf("%w: %q is not subscribed", ErrNoFolder, name)
	}
	return a.writeSubscriptions(slices.Delete(subs, i, i+1))
}

// Rename renames a folder and its children (RFC 9051 6.3.6). Renaming INBOX moves its messages
// into a new folder and leaves INBOX empty. Subscriptions are not changed (RFC 3501 6.3.5
// leaves them; clients resubscribe).
func (a *Account) Rename(oldName, newName string) error {
	oldName, err := NormalizeName(oldName)
	if err != nil {
		return err
	}
	newName, err = NormalizeName(newName)
	if err != nil {
		return err
	}
	if oldName == "INBOX" {
		return a.renameInbox(newName)
	}
	if err := a.lock(); err != nil {
		return err
	}
	defer a.s.mu.Unlock()
	if !a.exists(oldName) {
		return fmt.Errorf("%w: %q", ErrNoFolder, oldName)
	}
	if newName == "INBOX" || a.exists(newName) {
		return fmt.Errorf("%w: %q", ErrFolderExists, newName)
	}
	if strings.HasPrefix(newName, oldName+string(Delimiter)) {
		return fmt.Errorf("%w: %q is inside %q", ErrBadFolderName, newName, oldName)
	}
	// The usage does not change, but a recount must not run while folders change names: it
	// could miss one.
	c, err := a.s.beginCharge(a.mb, 0, 0)
	if err != nil {
		return err
	}
	defer c.end(true, 0, 0)
	// Parents of the new name, as CREATE would make them.
	if i := strings.LastIndexByte(newName, Delimiter); i > 0 {
		if err := a.createLocked(newName[:i]); err != nil && !errors.Is(err, ErrFolderExists) {
			return err
		}
	}
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return fmt.Errorf("store: renaming folder: %w", err)
	}
	a.dropLocked(oldName)
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || !strings.HasPrefix(n, ".") {
			continue
		}
		if n[1:] != oldName && !strings.HasPrefix(n[1:], oldName+string(Delimiter)) {
			continue
		}
		to := newName + n[1+len(oldName):]
		if err := os.Rename(filepath.Join(a.dir, n), a.folderDir(to)); err != nil {
			return fmt.Errorf("store: renaming folder: %w", err)
		}
	}
	a.dropLocked(newName)
	return durable.SyncDir(a.dir)
}

// renameInbox moves every INBOX message into a new folder newName (RFC 9051 6.3.6).
func (a *Account) renameInbox(newName string) error {
	if err := a.Create(newName); err != nil {
		return err
	}
	inbox, err := a.Folder("INBOX")
	if err != nil {
		return err
	}
	dest, err := a.Folder(newName)
	if err != nil {
		return err
	}
	var uids []uint32
	inbox.View(func(_, _ uint32, msgs []Message) {
		for _, m := range msgs {
			uids = append(uids, m.UID)
		}
	})
	_, _, _, err = inbox.MoveTo(dest, uids)
	return err
}
