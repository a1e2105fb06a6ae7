package imap

import (
	"reflect"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kubemail/kubemail/mailserver/store"
)

// List answers LIST and LSUB, with the LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and
// SPECIAL-USE (RFC 6154) options.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 || (len(patterns) == 1 && patterns[0] == "") {
		// RFC 9051 6.3.9: an empty pattern asks for the delimiter and the root.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: store.Delimiter})
	}
	folders, err := s.acct.List()
	if err != nil {
		return s.internal("listing folders", err)
	}
	subscribed := map[string]bool{}
	if options.SelectSubscribed || options.ReturnSubscribed {
		subs, err := s.acct.Subscriptions()
		if err != nil {
			return s.internal("listing subscriptions", err)
		}
		for _, n := range subs {
			subscribed[n] = true
			// A subscribed folder that no longer exists is listed as \NonExistent (RFC 5258 3).
			if options.SelectSubscribed && !slices.ContainsFunc(folders, func(fi store.FolderInfo) bool { return fi.Name == n }) {
				folders = append(folders, store.FolderInfo{Name: n, Subscribed: true, SpecialUse: "missing"})
			}
		}
	}
	lsub := isLSub(w)
	match := func(name string) bool {
		for _, p := range patterns {
			if imapserver.MatchList(name, store.Delimiter, ref, p) {
				return true
			}
		}
		return false
	}
	for _, fi := range folders {
		if !match(fi.Name) {
			continue
		}
		if options.SelectSubscribed && !subscribed[fi.Name] {
			continue
		}
		missing := fi.SpecialUse == "missing"
		if options.SelectSpecialUse && (fi.SpecialUse == "" || missing) {
			continue
		}
		data := imap.ListData{Mailbox: fi.Name, Delim: store.Delimiter}
		switch {
		case missing && lsub:
			data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
		case missing:
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		case lsub:
		case fi.HasChildren:
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		default:
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if subscribed[fi.Name] && !lsub {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if fi.SpecialUse != "" && !missing && !lsub {
			data.Attrs = append(data.Attrs, imap.MailboxAttr(fi.SpecialUse))
		}
		if options.ReturnStatus != nil && !missing {
			f, err := s.acct.Folder(fi.Name)
			if err == nil {
				data.Status, err = s.statusData(f, options.ReturnStatus)
			}
			if err != nil {
				return s.folderError("listing status", err)
			}
		}
		if err := w.WriteList(&data); err != nil {
			return err
		}
	}
	return nil
}

// isLSub tells an LSUB from a LIST (SUBSCRIBED): imapserver passes both the same options, but
// LSUB answers carry no LIST-EXTENDED attributes (RFC 3501 6.3.9).
func isLSub(w *imapserver.ListWriter) bool {
	f := reflect.ValueOf(w).Elem().FieldByName("lsub")
	return f.IsValid() && f.Kind() == reflect.Bool && f.Bool()
}
