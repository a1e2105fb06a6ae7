package imap

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestDovecotMigrationKeepsUIDs: alice's Maildir copied from Dovecot (a v3 dovecot-uidlist with
// gaps, keyword letters named in dovecot-keywords) is served with Dovecot's UIDVALIDITY and
// UIDs, so a client's cache stays valid: SELECT shows the same UIDVALIDITY and UIDNEXT, UID
// FETCH the same UIDs with their flags and keywords.
func TestDovecotMigrationKeepsUIDs(t *testing.T) {
	dataDir := t.TempDir()
	box := filepath.Join(dataDir, "mail", "example.test", "alice")
	t0 := time.Now().Add(-24 * time.Hour)
	body := "Subject: from Dovecot\r\n\r\nhello\r\n"
	files := []string{
		"cur/1700000001.M1P7.mx,S=32,W=32:2,S",
		"cur/1700000002.M2P7.mx,S=32,W=32:2,RSa",
		"new/1700000003.M3P7.mx,S=32,W=32",
	}
	write := func(name, data string) {
		path := filepath.Join(box, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range files {
		write(name, body)
		at := t0.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(filepath.Join(box, name), at, at); err != nil {
			t.Fatal(err)
		}
	}
	write("dovecot-uidlist", "3 V1650000000 N40 G0123456789abcdef0123456789abcdef\n"+
		"5 W32 S32 :1700000001.M1P7.mx,S=32,W=32:2,S\n"+
		"17 :1700000002.M2P7.mx,S=32,W=32:2,RS\n"+
		"31 :1700000003.M3P7.mx,S=32,W=32\n")
	write("dovecot-keywords", "0 $Label1\n")
	if err := os.MkdirAll(filepath.Join(box, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}

	e := startEnv(t, dataDir)
	c := e.login(alice, alicePassword)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.UIDValidity != 1650000000 || sel.UIDNext != 40 || sel.NumMessages != 3 {
		t.Errorf("SELECT INBOX: UIDVALIDITY %d UIDNEXT %d EXISTS %d; want Dovecot's 1650000000 and 40, 3 messages", sel.UIDValidity, sel.UIDNext, sel.NumMessages)
	}
	if !slices.Contains(sel.Flags, "$Label1") {
		t.Errorf("FLAGS %v lack Dovecot's keyword $Label1", sel.Flags)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(5, 17, 31), &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var got []imap.UID
	for _, m := range msgs {
		got = append(got, m.UID)
		if m.RFC822Size != int64(len(body)) {
			t.Errorf("UID %d: RFC822.SIZE %d, want %d", m.UID, m.RFC822Size, len(body))
		}
	}
	if !slices.Equal(got, []imap.UID{5, 17, 31}) {
		t.Fatalf("UID FETCH 5,17,31 returned UIDs %v", got)
	}
	wantFlags := [][]imap.Flag{{imap.FlagSeen}, {imap.FlagAnswered, imap.FlagSeen, "$Label1"}, nil}
	for i, m := range msgs {
		if !slices.Equal(m.Flags, wantFlags[i]) {
			t.Errorf("UID %d: FLAGS %v, want %v", m.UID, m.Flags, wantFlags[i])
		}
	}
}
