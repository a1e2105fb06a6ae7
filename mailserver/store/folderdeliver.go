package store

import (
	"errors"
	"fmt"
	"slices"
)

// ensureFolder returns the IMAP name and the Maildir of a folder of address that a delivery goes
// into, making it when missing: a mailbox never opened gets its INBOX and special-use folders
// first (as Account does); a folder the user deleted is made again and subscribed, so that
// clients showing only subscribed folders show it.
func (s *Store) ensureFolder(address, name string) (string, string, error) {
	name, err := NormalizeName(name)
	if err != nil {
		return "", "", err
	}
	dir, err := s.mailboxDir(address)
	if err != nil {
		return "", "", err
	}
	if name == "INBOX" {
		return name, dir, nil
	}
	a := &Account{s: s, dir: dir}
	folderDir := a.folderDir(name)
	if _, ok := s.madeDirs.Load(folderDir); ok {
		return name, folderDir, nil
	}
	if a, err = s.Account(address); err != nil {
		return "", "", fmt.Errorf("store: opening %s for delivery into %s: %w", address, name, err)
	}
	if a.exists(name) {
		return name, folderDir, nil
	}
	if err := a.Create(name); err != nil && !errors.Is(err, ErrFolderExists) {
		return "", "", fmt.Errorf("store: making folder %s of %s: %w", name, address, err)
	}
	subs, err := a.Subscriptions()
	if err == nil && !slices.Contains(subs, name) {
		err = a.Subscribe(name)
	}
	if err != nil {
		// The folder is there and takes the mail; a client listing subscribed folders only
		// will not show it until the user subscribes.
		s.logger.Warn("Failed to subscribe a folder made for delivery", "mailbox", address, "folder", name, "err", err)
	}
	s.logger.Info("Made a folder for delivery", "mailbox", address, "folder", name)
	return name, folderDir, nil
}
