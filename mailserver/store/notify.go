package store

import (
	"slices"
	"sort"
)

// notifyNewMail tells a loaded folder that new mail may be in its new/.
func (s *Store) notifyNewMail(key folderKey) {
	s.mu.Lock()
	f := s.folders[key]
	s.mu.Unlock()
	if f != nil {
		f.poke()
	}
}

// Attach returns the value attached to the folder, creating it on the first call with mk, under
// the folder's lock: mk gets the message count and returns the value and an observer that gets
// every later change. The IMAP server attaches its mailbox tracker this way.
func (f *Folder) Attach(mk func(count uint32) (any, Observer)) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.attachment == nil {
		f.attachment, f.observer = mk(uint32(len(f.msgs)))
	}
	return f.attachment
}

// noteKeywordsLocked adds keywords new to the folder to its set and reports the grown set.
func (f *Folder) noteKeywordsLocked(keywords []string) {
	grown := false
	for _, kw := range keywords {
		if !containsFold(f.keywords, kw) {
			f.keywords = append(f.keywords, kw)
			grown = true
		}
	}
	if grown {
		sort.Strings(f.keywords)
		if f.observer != nil {
			f.observer.KeywordsDefined(slices.Clone(f.keywords))
		}
	}
}

// Keywords returns every keyword seen in the folder since it was loaded.
func (f *Folder) Keywords() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.keywords)
}
