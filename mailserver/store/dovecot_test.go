package store

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// logLines is a slog.Handler keeping every record as "message key=value …".
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }
func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}
func (l *logLines) find(prefix string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// writeDovecotFile writes a file of a Maildir as Dovecot leaves it; message files get an mtime
// some hours apart, in the order written, so an unlisted one's place is known.
func writeDovecotFile(t *testing.T, dir, name, data string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func setMtime(t *testing.T, path string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// openDovecotStore opens a store over data with a log recorder, settled at the end of the test.
func openDovecotStore(t *testing.T, data string) (*Store, *logLines) {
	t.Helper()
	logs := &logLines{}
	s, err := Open(data, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { settlePickups(t, s) })
	return s, logs
}

// folderState refreshes a folder and returns its UIDVALIDITY, UIDNEXT and "<uid> <flag>…" for
// each message.
func folderState(t *testing.T, s *Store, address, folder string) (uint32, uint32, []string) {
	t.Helper()
	a, err := s.Account(address)
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.Folder(folder)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Refresh(); err != nil {
		t.Fatal(err)
	}
	var uidv, next uint32
	var out []string
	if err := f.View(func(uidValidity, uidNext uint32, msgs []Message) {
		uidv, next = uidValidity, uidNext
		for _, m := range msgs {
			out = append(out, strings.Join(append([]string{strconv.FormatUint(uint64(m.UID), 10)}, m.Flags()...), " "))
		}
	}); err != nil {
		t.Fatal(err)
	}
	return uidv, next, out
}

// TestDovecotUIDsKept: an INBOX copied from Dovecot (messages in cur/ with flags and keyword
// letters, one still in new/, one listed but gone, one copied in later and not listed; a v3
// uidlist with gaps; a keywords file) keeps its UIDVALIDITY, UIDs, UIDNEXT, flags and keywords,
// the unlisted message gets the next UID, Dovecot's files are left as they were, and the index
// written keeps all that after a restart.
func TestDovecotUIDsKept(t *testing.T) {
	data := t.TempDir()
	box := filepath.Join(data, "mail", "example.test", "alice")
	t0 := time.Now().Add(-48 * time.Hour)
	files := []string{
		"cur/1700000001.M10P100.old,S=10,W=11:2,S",
		"cur/1700000002.M20P100.old,S=10,W=11:2,FRSab",
		"cur/1700000003.M30P100.old,S=10,W=11:2,c",
		"new/1700000004.M40P100.old,S=10,W=11",
		"cur/1700000005.M50P100.old,S=10:2,T", // copied in after Dovecot stopped: not listed
	}
	for i, name := range files {
		writeDovecotFile(t, box, name, "Subject: "+string(rune('a'+i)))
		setMtime(t, filepath.Join(box, name), t0.Add(time.Duration(i)*time.Hour))
	}
	dovecotFiles := map[string]string{
		"dovecot-uidlist": "3 V1600000000 N20 G3085f01b7f11094c501100008c4a11c1\n" +
			"1 :1700000000.M1P100.old,S=10,W=11:2,S\n" + // gone
			"3 W11 S10 :1700000001.M10P100.old,S=10,W=11:2,S\n" +
			"7 :1700000002.M20P100.old,S=10,W=11:2,FRS\n" +
			"12 W11 :1700000003.M30P100.old,S=10,W=11\n" +
			"13 :1700000004.M40P100.old,S=10,W=11\n",
		"dovecot-keywords":  "0 $Label1\n1 Junk\n2 NonJunk\n",
		"dovecot.index":     "\x00binary index\x01",
		"dovecot.index.log": "\x00log",
		"subscriptions":     "V\t2\n\nINBOX\n",
	}
	for name, content := range dovecotFiles {
		writeDovecotFile(t, box, name, content)
	}
	for _, sub := range []string{"tmp"} {
		if err := os.MkdirAll(filepath.Join(box, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	s, logs := openDovecotStore(t, data)
	uidv, next, msgs := folderState(t, s, "alice@example.test", "INBOX")
	want := []string{
		`3 \Seen`,
		`7 \Answered \Flagged \Seen $Label1 Junk`,
		`12 NonJunk`,
		`13`,
		`20 \Deleted`,
	}
	if uidv != 1600000000 || next != 21 || !slices.Equal(msgs, want) {
		t.Errorf("INBOX after the copy from Dovecot: UIDVALIDITY %d UIDNEXT %d messages %q\nwant UIDVALIDITY 1600000000 UIDNEXT 21 messages %q", uidv, next, msgs, want)
	}
	line := logs.find("Kept Dovecot's UIDs")
	for _, part := range []string{"folder=INBOX", "uidValidity=1600000000", "messages=4"} {
		if !strings.Contains(line, part) {
			t.Errorf("log line %q lacks %q", line, part)
		}
	}
	for name, content := range dovecotFiles {
		if got, err := os.ReadFile(filepath.Join(box, name)); err != nil || string(got) != content {
			t.Errorf("Dovecot's %s changed: %q, %v", name, got, err)
		}
	}
	a, _ := s.Account("alice@example.test")
	if subs, err := a.Subscriptions(); err != nil || !slices.Equal(subs, []string{"INBOX"}) {
		t.Errorf("subscriptions from Dovecot's file: %q, %v; want [INBOX]", subs, err)
	}
	settlePickups(t, s)

	// A restart reads kubemail's index; mail delivered since gets the UID after.
	s2, _ := openDovecotStore(t, data)
	if _, err := s2.Deliver(context.Background(), []string{"alice@example.test"}, nil, strings.NewReader("Subject: new\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for uidv, next, msgs = folderState(t, s2, "alice@example.test", "INBOX"); len(msgs) < 6 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		uidv, next, msgs = folderState(t, s2, "alice@example.test", "INBOX")
	}
	if uidv != 1600000000 || next != 22 || !slices.Equal(msgs, append(want, "21")) {
		t.Errorf("INBOX after a restart and a delivery: UIDVALIDITY %d UIDNEXT %d messages %q", uidv, next, msgs)
	}
}

// TestDovecotUIDListVersion1: a folder with a version 1 (Courier-compatible) uidlist keeps its
// UIDs; UIDNEXT is above the highest listed UID even where the header's is lower, and messages
// not listed get UIDs from there in delivery order (by mtime), whatever their names.
func TestDovecotUIDListVersion1(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, "mail", "example.test", "bob", ".Work")
	t0 := time.Now().Add(-48 * time.Hour)
	files := []string{
		"cur/1700000009.M1P1.old:2,S", // listed as UID 9
		"cur/1700000005.M1P1.old:2,",  // listed as UID 4
		"cur/1700000003.M9P1.new:2,",  // unlisted, delivered after the next one
		"new/1700000004.M1P1.new",     // unlisted, delivered first
	}
	for i, name := range files {
		writeDovecotFile(t, dir, name, "Subject: x")
		setMtime(t, filepath.Join(dir, name), t0.Add(time.Duration(i)*time.Hour))
	}
	setMtime(t, filepath.Join(dir, files[3]), t0.Add(-time.Hour))
	writeDovecotFile(t, dir, "maildirfolder", "")
	writeDovecotFile(t, dir, "dovecot-uidlist", "1 1500000000 5\n4 1700000005.M1P1.old\n9 1700000009.M1P1.old:2,S\n")

	s, logs := openDovecotStore(t, data)
	uidv, next, msgs := folderState(t, s, "bob@example.test", "Work")
	want := []string{`4`, `9 \Seen`, `10`, `11`}
	if uidv != 1500000000 || next != 12 || !slices.Equal(msgs, want) {
		t.Errorf("Work: UIDVALIDITY %d UIDNEXT %d messages %q\nwant UIDVALIDITY 1500000000 UIDNEXT 12 messages %q", uidv, next, msgs, want)
	}
	// UID 10 is the message delivered first (in new/), 11 the later one.
	a, _ := s.Account("bob@example.test")
	f, _ := a.Folder("Work")
	f.View(func(_, _ uint32, ms []Message) {
		if len(ms) == 4 && (!strings.HasPrefix(ms[2].base, "1700000004.") || !strings.HasPrefix(ms[3].base, "1700000003.")) {
			t.Errorf("unlisted messages got UIDs 10 and 11 in the order %s, %s; want by delivery time", ms[2].base, ms[3].base)
		}
	})
	if line := logs.find("Kept Dovecot's UIDs"); !strings.Contains(line, "folder=Work") || !strings.Contains(line, "messages=2") {
		t.Errorf("log line %q, want the Work folder with 2 messages kept", line)
	}

	// A folder deleted and made again gets a UIDVALIDITY above Dovecot's.
	if err := a.Delete("Work"); err != nil {
		t.Fatal(err)
	}
	if err := a.Create("Work"); err != nil {
		t.Fatal(err)
	}
	if uidv, _, _ := folderState(t, s, "bob@example.test", "Work"); uidv <= 1500000000 {
		t.Errorf("Work made again has UIDVALIDITY %d, want more than Dovecot's 1500000000", uidv)
	}
}

// TestDovecotUIDListDamaged: a uidlist that cannot be parsed is ignored with a log line; the
// folder is rebuilt with a new UIDVALIDITY and UIDs from 1, as without one, and keywords from
// dovecot-keywords are still kept.
func TestDovecotUIDListDamaged(t *testing.T) {
	for name, uidlist := range map[string]string{
		"bad header":        "3 Vabc N5 Gxyz\n1 :1700000001.M1P1.old\n",
		"unknown version":   "2 1500000000 5\n1 :1700000001.M1P1.old\n",
		"UIDs out of order": "3 V1500000000 N9\n5 :1700000001.M1P1.old\n3 :1700000002.M1P1.old\n",
		"no file name":      "3 V1500000000 N9\n5 1700000001.M1P1.old\n",
		"empty":             "",
	} {
		t.Run(name, func(t *testing.T) {
			data := t.TempDir()
			box := filepath.Join(data, "mail", "example.test", "alice")
			writeDovecotFile(t, box, "cur/1700000001.M1P1.old:2,Sa", "Subject: x")
			writeDovecotFile(t, box, "dovecot-uidlist", uidlist)
			writeDovecotFile(t, box, "dovecot-keywords", "0 Work\n")
			s, logs := openDovecotStore(t, data)
			uidv, next, msgs := folderState(t, s, "alice@example.test", "INBOX")
			if uidv == 1500000000 || next != 2 || !slices.Equal(msgs, []string{`1 \Seen Work`}) {
				t.Errorf("INBOX: UIDVALIDITY %d UIDNEXT %d messages %q; want a new UIDVALIDITY, UIDNEXT 2, [1 \\Seen Work]", uidv, next, msgs)
			}
			if line := logs.find("Ignored a damaged dovecot-uidlist"); !strings.Contains(line, "folder=INBOX") {
				t.Errorf("no log line about the damaged uidlist: %q", logs.all())
			}
			if logs.find("Kept Dovecot's UIDs") != "" {
				t.Error("logged Dovecot's UIDs as kept")
			}
		})
	}
}
