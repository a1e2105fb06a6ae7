package store

// notifyNewMail tells a loaded INBOX of address that new mail may be in new/.
func (s *Store) notifyNewMail(address string) {
	s.mu.Lock()
	f := s.folders[folderKey{address: address, name: "INBOX"}]
	s.mu.Unlock()
	if f != nil {
		f.poke()
	}
}
