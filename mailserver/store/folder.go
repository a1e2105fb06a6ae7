package store

// Folder is one IMAP folder (a Maildir) of one mailbox, shared by every session that opens it.
type Folder struct{}

// poke schedules a rescan of the folder's new/ directory.
func (f *Folder) poke() {}
