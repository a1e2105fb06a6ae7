package imap

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// utf8Message has an RFC 2047 subject, a raw UTF-8 (RFC 6532) From and an 8-bit body.
const utf8Message = "From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@remote.test>\r\n" +
	"To: Zoë <alice@example.test>\r\n" +
	"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus Köln\r\n" +
	"Date: Tue, 03 Jan 2006 10:00:00 +0100\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"Schöne Grüße, straße.\r\n"

const multipartMessage = "From: carol@remote.test\r\nTo: alice@example.test\r\nSubject: parts\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n" +
	"--XX\r\nContent-Type: text/plain\r\n\r\nfirst part needle\r\n" +
	"--XX\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--XX--\r\n"

func fetchOne(t *testing.T, c *imapclient.Client, set imap.NumSet, opts *imap.FetchOptions) *imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(set, opts).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("FETCH returned %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func TestFetch(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, utf8Message)
	e.deliver(alice, multipartMessage)
	c := e.login(alice, alicePassword)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 2 || sel.UIDNext != 3 || sel.UIDValidity == 0 {
		t.Errorf("SELECT: %+v", sel)
	}
	if !slices.Contains(sel.PermanentFlags, imap.FlagWildcard) {
		t.Errorf("PERMANENTFLAGS %v lacks \\*", sel.PermanentFlags)
	}

	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, Flags: true, RFC822Size: true, InternalDate: true, UID: true})
	if m.UID != 1 || m.RFC822Size != int64(len(utf8Message)) || len(m.Flags) != 0 || time.Since(m.InternalDate) > time.Hour {
		t.Errorf("FETCH 1: uid %d size %d flags %v date %v", m.UID, m.RFC822Size, m.Flags, m.InternalDate)
	}
	if env := m.Envelope; env == nil || env.Subject != "Grüße aus Köln" || len(env.From) != 1 || env.From[0].Name != "Jürgen" || env.To[0].Name != "Zoë" {
		t.Errorf("ENVELOPE with 8-bit and encoded headers: %+v", m.Envelope)
	}

	whole := &imap.FetchItemBodySection{Peek: true}
	text := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true}
	header := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	partial := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 6, Size: 10}}
	fields := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
	m = fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{whole, text, header, partial, fields}})
	if got := m.FindBodySection(whole); string(got) != utf8Message {
		t.Errorf("BODY[] = %q, want the message byte for byte", got)
	}
	hdrEnd := strings.Index(utf8Message, "\r\n\r\n") + 4
	if got := m.FindBodySection(text); string(got) != utf8Message[hdrEnd:] {
		t.Errorf("BODY[TEXT] = %q", got)
	}
	if got := m.FindBodySection(header); string(got) != utf8Message[:hdrEnd] {
		t.Errorf("BODY[HEADER] = %q", got)
	}
	if got := m.FindBodySection(partial); string(got) != utf8Message[6:16] {
		t.Errorf("BODY[]<6.10> = %q, want %q", got, utf8Message[6:16])
	}
	if got := m.FindBodySection(fields); string(got) != "Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus Köln\r\n\r\n" {
		t.Errorf("BODY[HEADER.FIELDS (SUBJECT)] = %q", got)
	}
	if m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}); len(m.Flags) != 0 {
		t.Errorf("BODY.PEEK set flags %v", m.Flags)
	}

	// Multipart: BODYSTRUCTURE and a part.
	part2 := &imap.FetchItemBodySection{Part: []int{2}}
	m = fetchOne(t, c, imap.UIDSetNum(2), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, BodySection: []*imap.FetchItemBodySection{part2}})
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 2 {
		t.Errorf("BODYSTRUCTURE: %#v", m.BodyStructure)
	} else if sp, ok := mp.Children[1].(*imap.BodyStructureSinglePart); !ok || sp.Subtype != "html" {
		t.Errorf("BODYSTRUCTURE part 2: %#v", mp.Children[1])
	}
	if got := m.FindBodySection(part2); string(got) != "<p>second</p>" {
		t.Errorf("BODY[2] = %q", got)
	}
	// A non-peek fetch set \Seen and said so.
	if !slices.Contains(m.Flags, imap.FlagSeen) {
		t.Errorf("BODY[2] did not return FLAGS with \\Seen: %v", m.Flags)
	}
	st, _ := c.Status("INBOX", &imap.StatusOptions{NumUnseen: true}).Wait()
	if *st.NumUnseen != 1 {
		t.Errorf("unseen after BODY[2]: %d, want 1", *st.NumUnseen)
	}
	// A message past the end fetches nothing.
	if msgs, err := c.Fetch(imap.UIDSetNum(99), &imap.FetchOptions{Flags: true}).Collect(); err != nil || len(msgs) != 0 {
		t.Errorf("UID FETCH 99: %v, %v", msgs, err)
	}
}

func TestStoreSearchCopyMoveExpunge(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, msgText("alpha", "first body\r\n"))
	e.deliver(alice, multipartMessage)
	e.deliver(alice, utf8Message)
	c := e.login(alice, alicePassword)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Important"}}, nil).Collect()
	if err != nil || len(msgs) != 2 || !slices.Contains(msgs[0].Flags, imap.FlagFlagged) || !slices.Contains(msgs[0].Flags, "$Important") {
		t.Fatalf("STORE +FLAGS: %+v, %v", msgs, err)
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}

	search := func(crit *imap.SearchCriteria) []uint32 {
		t.Helper()
		data, err := c.UIDSearch(crit, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		var out []uint32
		for _, u := range data.AllUIDs() {
			out = append(out, uint32(u))
		}
		return out
	}
	for name, tc := range map[string]struct {
		crit *imap.SearchCriteria
		want []uint32
	}{
		"FLAGGED":               {&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, []uint32{1}},
		"KEYWORD":               {&imap.SearchCriteria{Flag: []imap.Flag{"$Important"}}, []uint32{1, 2}},
		"UNFLAGGED":             {&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagFlagged}}, []uint32{2, 3}},
		"SUBJECT alpha":         {&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "ALPHA"}}}, []uint32{1}},
		"SUBJECT Grüße":         {&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "grüße"}}}, []uint32{3}},
		"BODY needle":           {&imap.SearchCriteria{Body: []string{"needle"}}, []uint32{2}},
		"BODY straße":           {&imap.SearchCriteria{Body: []string{"STRASSE"}}, nil},
		"TEXT schöne":           {&imap.SearchCriteria{Text: []string{"schöne"}}, []uint32{3}},
		"LARGER":                {&imap.SearchCriteria{Larger: int64(len(msgText("alpha", "first body\r\n")))}, []uint32{2, 3}},
		"UID 2:*":               {&imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 2, Stop: 0}}}}, []uint32{2, 3}},
		"NOT SEEN":              {&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []uint32{1, 2, 3}},
		"OR":                    {&imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{"needle"}}, {Flag: []imap.Flag{imap.FlagFlagged}}}}}, []uint32{1, 2}},
		"SENTBEFORE 2006-01-03": {&imap.SearchCriteria{SentBefore: time.Date(2006, 1, 3, 0, 0, 0, 0, time.UTC)}, []uint32{1}},
	} {
		if got := search(tc.crit); !slices.Equal(got, tc.want) {
			t.Errorf("UID SEARCH %s = %v, want %v", name, got, tc.want)
		}
	}
	seqData, err := c.Search(&imap.SearchCriteria{Flag: []imap.Flag{"$Important"}}, nil).Wait()
	if err != nil || !slices.Equal(seqData.AllSeqNums(), []uint32{1, 2}) {
		t.Errorf("SEARCH KEYWORD: %v, %v", seqData, err)
	}

	// COPY with COPYUID, and [TRYCREATE] for a missing mailbox.
	cd, err := c.Copy(imap.SeqSetNum(1, 2), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if src, _ := cd.SourceUIDs.Nums(); !slices.Equal(src, []imap.UID{1, 2}) {
		t.Errorf("COPYUID source %v", cd.SourceUIDs)
	}
	if dst, _ := cd.DestUIDs.Nums(); !slices.Equal(dst, []imap.UID{1, 2}) || cd.UIDValidity == 0 {
		t.Errorf("COPYUID dest %v validity %d", cd.DestUIDs, cd.UIDValidity)
	}
	_, err = c.Copy(imap.SeqSetNum(1), "Nope").Wait()
	expectCode(t, "COPY to a missing mailbox", err, imap.ResponseCodeTryCreate)
	st, _ := c.Status("Archive", &imap.StatusOptions{NumMessages: true}).Wait()
	if *st.NumMessages != 2 {
		t.Errorf("Archive holds %d after COPY", *st.NumMessages)
	}

	// MOVE: COPYUID, then EXPUNGE of the moved message.
	md, err := c.Move(imap.UIDSetNum(2), "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if src, _ := md.SourceUIDs.(imap.UIDSet).Nums(); !slices.Equal(src, []imap.UID{2}) {
		t.Errorf("MOVE COPYUID source %v", md.SourceUIDs)
	}
	if n := c.Mailbox().NumMessages; n != 2 {
		t.Errorf("client sees %d messages after MOVE, want 2", n)
	}
	_, err = c.Move(imap.SeqSetNum(1), "Nope").Wait()
	expectCode(t, "MOVE to a missing mailbox", err, imap.ResponseCodeTryCreate)

	// UID EXPUNGE removes only the given UIDs; EXPUNGE the rest flagged \Deleted.
	c.Store(imap.UIDSetNum(1, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	expunged, err := c.UIDExpunge(imap.UIDSetNum(3)).Collect()
	if err != nil || !slices.Equal(expunged, []uint32{2}) {
		t.Errorf("UID EXPUNGE 3: %v, %v", expunged, err)
	}
	expunged, err = c.Expunge().Collect()
	if err != nil || !slices.Equal(expunged, []uint32{1}) {
		t.Errorf("EXPUNGE: %v, %v", expunged, err)
	}
	if n := c.Mailbox().NumMessages; n != 0 {
		t.Errorf("client sees %d messages after EXPUNGE", n)
	}
}

func TestAppendAndExamine(t *testing.T) {
	e := newEnv(t)
	c := e.login(alice, alicePassword)
	date := time.Date(2021, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))
	msg := msgText("draft", "text\r\n")
	cmd := c.Append("Drafts", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft, imap.FlagSeen}, Time: date})
	cmd.Write([]byte(msg))
	cmd.Close()
	ad, err := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if ad.UID != 1 || ad.UIDValidity == 0 {
		t.Errorf("APPENDUID %+v", ad)
	}
	bad := c.Append("Nope", 3, nil)
	bad.Write([]byte("x\r\n"))
	bad.Close()
	_, err = bad.Wait()
	expectCode(t, "APPEND to a missing mailbox", err, imap.ResponseCodeTryCreate)

	sel, err := c.Select("Drafts", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("EXAMINE: %+v, %v", sel, err)
	}
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{}}})
	if !m.InternalDate.Equal(date) || !slices.Equal(m.Flags, []imap.Flag{imap.FlagDraft, imap.FlagSeen}) || string(m.FindBodySection(&imap.FetchItemBodySection{})) != msg {
		t.Errorf("appended message: date %v flags %v", m.InternalDate, m.Flags)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err == nil {
		t.Error("STORE in an EXAMINEd mailbox succeeded")
	}
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Errorf("CLOSE of an EXAMINEd mailbox: %v", err)
	}
}

func TestTwoSessionsSeeEachOther(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, msgText("one", "1\r\n"))
	e.deliver(alice, msgText("two", "2\r\n"))
	var expunges []uint32
	fetches := make(chan *imapclient.FetchMessageBuffer, 10)
	mailboxFlags := make(chan []imap.Flag, 10)
	a := e.loginWith(alice, alicePassword, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.Flags != nil {
				mailboxFlags <- d.Flags
			}
		},
		Expunge: func(seq uint32) { expunges = append(expunges, seq) },
		Fetch: func(m *imapclient.FetchMessageData) { // runs on its own goroutine
			buf, _ := m.Collect()
			fetches <- buf
		},
	})
	b := e.login(alice, alicePassword)
	for _, c := range []*imapclient.Client{a, b} {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-fetches:
		if m.SeqNum != 2 || !slices.Equal(m.Flags, []imap.Flag{imap.FlagSeen}) {
			t.Errorf("session A saw FETCH %d FLAGS %v, want 2 (\\Seen)", m.SeqNum, m.Flags)
		}
	case <-time.After(30 * time.Second):
		t.Error("session A saw no FETCH after session B's STORE")
	}
	// A new keyword is announced with FLAGS before a FETCH shows it (RFC 9051 7.3.5).
	b.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$Project"}}, nil).Close()
	a.Noop().Wait()
	select {
	case flags := <-mailboxFlags:
		if !slices.Contains(flags, "$Project") {
			t.Errorf("FLAGS %v lacks the new keyword", flags)
		}
	case <-time.After(30 * time.Second):
		t.Error("session A got no FLAGS for a new keyword")
	}
	<-fetches
	e.deliver(alice, msgText("three", "3\r\n"))
	waitFor(t, 30*time.Second, "EXISTS 3 in session A", func() bool {
		a.Noop().Wait()
		return a.Mailbox().NumMessages == 3
	})
	b.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	if _, err := b.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(expunges, []uint32{1}) || a.Mailbox().NumMessages != 2 {
		t.Errorf("session A saw expunges %v and %d messages", expunges, a.Mailbox().NumMessages)
	}
	// Session A's sequence numbers follow: message 1 is now the one with UID 2.
	if m := fetchOne(t, a, imap.SeqSetNum(1), &imap.FetchOptions{UID: true}); m.UID != 2 {
		t.Errorf("after expunge, seq 1 has UID %d, want 2", m.UID)
	}
}

func TestIdleReportsNewMail(t *testing.T) {
	e := newEnv(t)
	exists := make(chan uint32, 10)
	c := e.loginWith(alice, alicePassword, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	// The delivery's notice reaches the session at once; the rescan IDLE also does comes only
	// idleRescanInterval after IDLE began. So an EXISTS well before that was pushed, however
	// loaded the machine (a bound of a second failed on loaded CI machines).
	pushed := time.After(idleRescanInterval * 8 / 10)
	e.deliver(alice, msgText("while idle", "x\r\n"))
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("IDLE reported %d EXISTS, want 1", n)
		}
	case <-pushed:
		t.Fatalf("IDLE did not report new mail within %v", idleRescanInterval*8/10)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsUIDsAndFlags(t *testing.T) {
	e := newEnv(t)
	for _, s := range []string{"a", "b", "c"} {
		e.deliver(alice, msgText(s, s+"\r\n"))
	}
	c := e.login(alice, alicePassword)
	sel, _ := c.Select("INBOX", nil).Wait()
	c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	c.Expunge().Close()
	c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered, "$Label"}}, nil).Close()
	c.Logout().Wait()
	e.srv.Close()

	e2 := startEnv(t, e.dataDir)
	c2 := e2.login(alice, alicePassword)
	sel2, err := c2.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel2.UIDValidity != sel.UIDValidity || sel2.UIDNext != 4 || sel2.NumMessages != 2 {
		t.Errorf("after restart: %+v, before: %+v", sel2, sel)
	}
	msgs, err := c2.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatal(msgs, err)
	}
	if msgs[0].UID != 2 || msgs[1].UID != 3 || !slices.Equal(msgs[1].Flags, []imap.Flag{imap.FlagAnswered, "$Label"}) {
		t.Errorf("after restart: UIDs %d, %d, flags %v", msgs[0].UID, msgs[1].UID, msgs[1].Flags)
	}
	e2.deliver(alice, msgText("d", "d\r\n"))
	waitFor(t, 30*time.Second, "new mail after restart", func() bool {
		c2.Noop().Wait()
		return c2.Mailbox().NumMessages == 3
	})
	if m := fetchOne(t, c2, imap.SeqSetNum(3), &imap.FetchOptions{UID: true}); m.UID != 4 {
		t.Errorf("new mail after restart got UID %d, want 4", m.UID)
	}
}

func TestDamagedIndexIsRebuilt(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, msgText("a", "a\r\n"))
	e.deliver(alice, msgText("b", "b\r\n"))
	c := e.login(alice, alicePassword)
	sel, _ := c.Select("INBOX", nil).Wait()
	c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close()
	c.Logout().Wait()
	e.srv.Close()

	index := filepath.Join(e.dataDir, "mail", "example.test", "alice", "kubemail-index")
	data, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(index, bytes.ReplaceAll(data[:len(data)/2], []byte(" "), []byte("\x00")), 0o600)

	e2 := startEnv(t, e.dataDir)
	c2 := e2.login(alice, alicePassword)
	sel2, err := c2.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT with a damaged index: %v", err)
	}
	if sel2.NumMessages != 2 || sel2.UIDValidity == sel.UIDValidity {
		t.Errorf("rebuilt: %d messages, UIDVALIDITY %d (was %d)", sel2.NumMessages, sel2.UIDValidity, sel.UIDValidity)
	}
	msgs, _ := c2.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Flags: true}).Collect()
	flagged := 0
	for _, m := range msgs {
		if slices.Contains(m.Flags, imap.FlagFlagged) {
			flagged++
		}
	}
	if flagged != 1 {
		t.Errorf("flags lost in the rebuild: %d flagged", flagged)
	}
}

func TestLargeMessage(t *testing.T) {
	e := newEnv(t)
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n" // 66 bytes
	body := strings.Repeat(line, 20<<20/len(line))
	msg := msgText("big", body)
	e.deliver(alice, msg)
	c := e.login(alice, alicePassword)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	tail := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: int64(len(msg) - 10), Size: 100}}
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{RFC822Size: true, BodyStructure: &imap.FetchItemBodyStructure{}, BodySection: []*imap.FetchItemBodySection{whole, tail}})
	if m.RFC822Size != int64(len(msg)) {
		t.Errorf("RFC822.SIZE %d, want %d", m.RFC822Size, len(msg))
	}
	if got := m.FindBodySection(whole); len(got) != len(msg) || string(got) != msg {
		t.Errorf("BODY[] of the 20 MiB message differs (%d bytes)", len(got))
	}
	if got := m.FindBodySection(tail); string(got) != msg[len(msg)-10:] {
		t.Errorf("BODY[]<end-10.100> = %q", got)
	}
	if sp, ok := m.BodyStructure.(*imap.BodyStructureSinglePart); !ok || sp.Size != uint32(len(body)) {
		t.Errorf("BODYSTRUCTURE %#v", m.BodyStructure)
	}
}
