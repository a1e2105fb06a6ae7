package imap

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// dovecotIMAP is Debian's Dovecot IMAP server binary (package dovecot-imapd), which the test
// below runs directly in pre-authenticated mode: no daemon, no config outside the test's.
const dovecotIMAP = "/usr/lib/dovecot/imap"

// runDovecot runs one pre-authenticated Dovecot IMAP session on the Maildir box with the given
// commands and returns what it wrote. Dovecot refuses to touch mail as root, so it runs as
// nobody (uid 65534), which owns the Maildir until the test gives it back.
func runDovecot(t *testing.T, conf, commands string) string {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", dovecotIMAP, "-c", conf)
	cmd.Env = []string{"USER=alice", "HOME=/nonexistent", "PATH=/usr/bin:/bin"}
	cmd.Stdin = strings.NewReader(strings.ReplaceAll(commands, "\n", "\r\n"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dovecot imap: %v\n%s", err, out)
	}
	return string(out)
}

func chownTree(t *testing.T, dir string, uid int) {
	t.Helper()
	if err := filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, uid)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRealDovecotMigration lets Dovecot itself write a Maildir (it assigns UIDs, sets flags and
// keywords, expunges one message, so the UIDs have a gap), copies nothing but serves the same
// directory with kubemail, as an admin who copied it over would: SELECT and UID FETCH show
// Dovecot's UIDVALIDITY, UIDNEXT, UIDs, flags and keywords. Skipped where Dovecot is not
// installed (apt-get install dovecot-imapd) or the test is not root (setpriv needs it).
func TestRealDovecotMigration(t *testing.T) {
	if _, err := os.Stat(dovecotIMAP); err != nil {
		t.Skipf("Dovecot not installed (%v)", err)
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("no setpriv (util-linux) to run Dovecot as nobody: %v", err)
	}
	if os.Getuid() != 0 {
		t.Skip("running Dovecot as another user needs root")
	}
	dataDir := t.TempDir()
	// Let nobody reach the Maildir through the test's two temp dirs (0700, root's).
	for _, d := range []string{filepath.Dir(dataDir), dataDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	box := filepath.Join(dataDir, "mail", "example.test", "alice")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(box, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, subject := range []string{"one", "two", "three", "four"} {
		body := "Subject: " + subject + "\r\n\r\nhello\r\n"
		name := filepath.Join(box, "new", "170000000"+strconv.Itoa(i)+".M"+strconv.Itoa(i)+"P1.old")
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	chownTree(t, filepath.Join(dataDir, "mail"), 65534)
	conf := filepath.Join(dataDir, "dovecot.conf")
	if err := os.WriteFile(conf, []byte("mail_location = maildir:"+box+"\nlog_path = /dev/stderr\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runDovecot(t, conf, "a SELECT INBOX\nb STORE 1 +FLAGS (\\Seen $Label1)\nc STORE 3 +FLAGS (Junk \\Flagged \\Answered)\n"+
		"d STORE 2 +FLAGS (\\Deleted)\ne LOGOUT\n")
	runDovecot(t, conf, "a SELECT INBOX\nb EXPUNGE\nc LOGOUT\n")
	out := runDovecot(t, conf, "a SELECT INBOX\nb UID FETCH 1:* (UID FLAGS)\nc LOGOUT\n")
	chownTree(t, filepath.Join(dataDir, "mail"), 0)

	m := regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no UIDVALIDITY from Dovecot:\n%s", out)
	}
	dovecotUIDValidity, _ := strconv.ParseUint(m[1], 10, 32)
	var want []string // "<uid> <flags, sorted>", Dovecot's view without \Recent
	for _, line := range regexp.MustCompile(`(?m)^\* \d+ FETCH \((.*)\)\r?$`).FindAllStringSubmatch(out, -1) {
		uid := regexp.MustCompile(`UID (\d+)`).FindStringSubmatch(line[1])
		flags := regexp.MustCompile(`FLAGS \(([^)]*)\)`).FindStringSubmatch(line[1])
		if uid == nil || flags == nil {
			continue
		}
		fl := slices.DeleteFunc(strings.Fields(flags[1]), func(f string) bool { return f == `\Recent` })
		slices.Sort(fl)
		want = append(want, strings.TrimSpace(uid[1]+" "+strings.Join(fl, " ")))
	}
	if len(want) != 3 || !strings.HasPrefix(want[1], "3 ") {
		t.Fatalf("Dovecot's session did not leave UIDs 1, 3 and 4 (%q):\n%s", want, out)
	}
	if _, err := os.Stat(filepath.Join(box, "dovecot-uidlist")); err != nil {
		t.Fatalf("Dovecot wrote no uidlist: %v", err)
	}

	// kubemail has handed out UIDVALIDITYs above Dovecot's (both count seconds): a folder
	// started afresh would not show Dovecot's.
	last := []byte(strconv.FormatUint(dovecotUIDValidity+1000, 10) + "\n")
	if err := os.WriteFile(filepath.Join(dataDir, "mail", "uidvalidity"), last, 0o600); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, dataDir)
	c := e.login(alice, alicePassword)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if uint64(sel.UIDValidity) != dovecotUIDValidity || sel.UIDNext != 5 {
		t.Errorf("SELECT INBOX: UIDVALIDITY %d UIDNEXT %d, want Dovecot's %d and 5", sel.UIDValidity, sel.UIDNext, dovecotUIDValidity)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1, 2, 3, 4), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, msg := range msgs {
		var fl []string
		for _, f := range msg.Flags {
			fl = append(fl, string(f))
		}
		slices.Sort(fl)
		got = append(got, strings.TrimSpace(strconv.FormatUint(uint64(msg.UID), 10)+" "+strings.Join(fl, " ")))
	}
	if !slices.Equal(got, want) {
		t.Errorf("kubemail's UID FETCH: %q\nDovecot's:          %q", got, want)
	}
}
