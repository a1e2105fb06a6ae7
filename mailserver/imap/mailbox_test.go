package imap

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func listNames(t *testing.T, data []*imap.ListData) map[string][]imap.MailboxAttr {
	t.Helper()
	out := map[string][]imap.MailboxAttr{}
	for _, d := range data {
		if d.Delim != '.' {
			t.Errorf("%s has delimiter %q, want '.'", d.Mailbox, d.Delim)
		}
		out[d.Mailbox] = d.Attrs
	}
	return out
}

func TestListSpecialUseAndNamespace(t *testing.T) {
	e := newEnv(t)
	c := e.login(alice, alicePassword)
	caps := c.Caps()
	for _, cp := range []imap.Cap{imap.CapIMAP4rev2, imap.CapSpecialUse, imap.CapUIDPlus, imap.CapMove, imap.CapIdle, imap.CapNamespace, imap.CapListStatus} {
		if !caps.Has(cp) {
			t.Errorf("capability %s missing from %v", cp, caps)
		}
	}
	data, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	got := listNames(t, data)
	for name, use := range map[string]imap.MailboxAttr{"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash, "Junk": imap.MailboxAttrJunk, "Archive": imap.MailboxAttrArchive} {
		if !slices.Contains(got[name], use) {
			t.Errorf("LIST: %s has %v, want %s", name, got[name], use)
		}
	}
	if _, ok := got["INBOX"]; !ok {
		t.Errorf("LIST lacks INBOX: %v", got)
	}
	// The delimiter query.
	data, err = c.List("", "", nil).Collect()
	if err != nil || len(data) != 1 || data[0].Delim != '.' || data[0].Mailbox != "" {
		t.Errorf(`LIST "" "": %+v, %v`, data, err)
	}
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '.' || ns.Personal[0].Prefix != "" {
		t.Errorf("NAMESPACE: %+v, %v", ns, err)
	}
	// LIST-STATUS.
	e.deliver(alice, msgText("hello", "hi\r\n"))
	data, err = c.List("", "INBOX", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true}}).Collect()
	if err != nil || len(data) != 1 || data[0].Status == nil || *data[0].Status.NumMessages != 1 || *data[0].Status.NumUnseen != 1 {
		t.Errorf("LIST RETURN (STATUS): %+v, %v", data, err)
	}
}

func TestCreateRenameDeleteSubscribe(t *testing.T) {
	e := newEnv(t)
	c := e.login(alice, alicePassword)
	if err := c.Create("Projects.2024", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	expectCode(t, "CREATE of an existing mailbox", c.Create("Projects", nil).Wait(), imap.ResponseCodeAlreadyExists)
	expectCode(t, "CREATE INBOX", c.Create("INBOX", nil).Wait(), imap.ResponseCodeAlreadyExists)
	expectCode(t, "CREATE with an empty level", c.Create("a..b", nil).Wait(), imap.ResponseCodeCannot)
	if err := c.Create("Trailing.", nil).Wait(); err != nil {
		t.Errorf("CREATE with a trailing delimiter: %v", err)
	}
	data, _ := c.List("", "Projects*", nil).Collect()
	got := listNames(t, data)
	if !slices.Contains(got["Projects"], imap.MailboxAttrHasChildren) || !slices.Contains(got["Projects.2024"], imap.MailboxAttrHasNoChildren) {
		t.Errorf("LIST Projects*: %v", got)
	}
	data, _ = c.List("", "%", nil).Collect()
	if _, ok := listNames(t, data)["Projects.2024"]; ok {
		t.Errorf(`LIST "" "%%" returned a child: %v`, listNames(t, data))
	}

	if err := c.Rename("Projects", "Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	expectCode(t, "RENAME of a missing mailbox", c.Rename("Projects", "X", nil).Wait(), imap.ResponseCodeNonExistent)
	expectCode(t, "RENAME onto an existing mailbox", c.Rename("Work", "Sent", nil).Wait(), imap.ResponseCodeAlreadyExists)
	if _, err := c.Status("Work.2024", &imap.StatusOptions{NumMessages: true}).Wait(); err != nil {
		t.Errorf("STATUS of the renamed child: %v", err)
	}

	expectCode(t, "DELETE of a parent", c.Delete("Work").Wait(), imap.ResponseCodeHasChildren)
	expectCode(t, "DELETE of a missing mailbox", c.Delete("Nope").Wait(), imap.ResponseCodeNonExistent)
	expectCode(t, "DELETE INBOX", c.Delete("INBOX").Wait(), imap.ResponseCodeCannot)
	if err := c.Delete("Work.2024").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Work.2024", nil).Wait(); err == nil {
		t.Error("SELECT of a deleted mailbox succeeded")
	} else if code := responseCode(t, err); code != imap.ResponseCodeNonExistent {
		t.Errorf("SELECT of a deleted mailbox: %v", err)
	}

	if err := c.Subscribe("Work").Wait(); err != nil {
		t.Fatal(err)
	}
	expectCode(t, "SUBSCRIBE to a missing mailbox", c.Subscribe("Nope").Wait(), imap.ResponseCodeNonExistent)
	if err := c.Unsubscribe("Junk").Wait(); err != nil {
		t.Fatal(err)
	}
	data, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	subs := listNames(t, data)
	if _, ok := subs["Work"]; !ok {
		t.Errorf("LIST (SUBSCRIBED) lacks Work: %v", subs)
	}
	if _, ok := subs["Junk"]; ok {
		t.Errorf("LIST (SUBSCRIBED) still has Junk: %v", subs)
	}
	if !slices.Contains(subs["Work"], imap.MailboxAttrSubscribed) {
		t.Errorf("LIST (SUBSCRIBED): Work lacks \\Subscribed: %v", subs["Work"])
	}
	// Subscriptions survive a restart.
	e2 := startEnv(t, e.dataDir)
	c2 := e2.login(alice, alicePassword)
	data, _ = c2.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if _, ok := listNames(t, data)["Work"]; !ok {
		t.Errorf("subscription lost across a restart")
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, msgText("one", "1\r\n"))
	e.deliver(alice, msgText("two", "22\r\n"))
	c := e.login(alice, alicePassword)
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, NumDeleted: true, Size: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 2 || st.UIDNext != 3 || st.UIDValidity == 0 || *st.NumUnseen != 2 || *st.NumDeleted != 0 {
		t.Errorf("STATUS: %+v", st)
	}
	if want := int64(len(msgText("one", "1\r\n")) + len(msgText("two", "22\r\n"))); *st.Size != want {
		t.Errorf("STATUS SIZE %d, want %d", *st.Size, want)
	}
	_, err = c.Status("Nope", &imap.StatusOptions{NumMessages: true}).Wait()
	expectCode(t, "STATUS of a missing mailbox", err, imap.ResponseCodeNonExistent)
}
