package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// purgeDomain is config/samples' MailDomain with the purge annotation listing addrs.
func purgeDomain(addrs string) string {
	return fmt.Sprintf(`apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata:
  name: example-test
  annotations: {mail.kubemail.io/purge: %q}
spec: {domain: example.test}
`, addrs)
}

// messageFiles lists the message files under the Maildir of addr in dataDir (nil if it is gone).
func messageFiles(t *testing.T, dataDir, addr string) []string {
	t.Helper()
	local, domain, _ := strings.Cut(addr, "@")
	dir := filepath.Join(dataDir, "mail", domain, local)
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if sub := filepath.Base(filepath.Dir(path)); d.Type().IsRegular() && (sub == "cur" || sub == "new") {
			files = append(files, path)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// carolSession is carol logged in over IMAP with her INBOX selected: a mailbox in use.
func carolSession(t *testing.T, addr string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("carol@example.test", "carol-password").Wait(); err != nil {
		t.Fatal(err)
	}
	if data, err := c.Select("INBOX", nil).Wait(); err != nil || data.NumMessages != 1 {
		t.Fatalf("carol's INBOX: %+v, %v; want her one message", data, err)
	}
	return c
}

// A Mailbox deleted with the purge annotation set loses its mail on reload, also one in use
// (carol, who got mail and has her INBOX open over IMAP), others keep theirs; a listed address
// that is a mailbox again is never touched. The session on the purged mailbox is ended (BYE,
// see revoke_test.go); a Mailbox created again with the address starts empty and gets mail at
// once.
func TestPurgeRemovesDeletedMailboxes(t *testing.T) {
	manifests := copySamples(t)
	dataDir := t.TempDir()
	withData := func(o *Options) { o.DataDir = dataDir }
	writeFile(t, filepath.Join(manifests, "carol.yaml"), carol)
	srv := startServer(t, manifests, withData)
	for _, to := range []string{"alice@example.test", "bob@example.test", "carol@example.test"} {
		if err := sendMail(srv.addrs["smtp"], to); err != nil {
			t.Fatalf("mail to %s: %v", to, err)
		}
	}
	session := carolSession(t, srv.addrs["imap"])
	// dave's mailbox is from an earlier life of the server: a Maildir, no Mailbox.
	daveNew := filepath.Join(dataDir, "mail", "example.test", "dave", "new")
	if err := os.MkdirAll(daveNew, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(daveNew, "1.M1P1.host,S=5"), "hello")

	// carol is deleted; carol, dave and alice (still a mailbox) are listed for purging.
	if err := os.Remove(filepath.Join(manifests, "carol.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(manifests, "example-test.yaml"), purgeDomain("carol@example.test, dave@example.test, alice@example.test"))
	for _, addr := range []string{"dave@example.test", "carol@example.test"} {
		eventually(t, addr+"'s Maildir is purged on reload", func() error {
			local, _, _ := strings.Cut(addr, "@")
			if _, err := os.Stat(filepath.Join(dataDir, "mail", "example.test", local)); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("the mailbox directory is still there: %v", err)
			}
			return nil
		})
	}
	// The Maildir leaves mail/ first (renamed into the trash); the log line comes once the
	// trash copy is removed.
	for _, line := range []string{`msg="Purged a deleted mailbox" mailbox=carol@example.test`, `msg="Purged a deleted mailbox" mailbox=dave@example.test`} {
		eventually(t, "the log line "+line, func() error {
			if !strings.Contains(srv.log.String(), line) {
				return fmt.Errorf("not in the log:\n%s", srv.log.String())
			}
			return nil
		})
	}
	if entries, err := os.ReadDir(filepath.Join(dataDir, trashDir)); err != nil || len(entries) != 0 {
		t.Errorf("trash: %v %v, want it empty", entries, err)
	}
	// carol's open session is ended by the server; the server goes on.
	select {
	case <-session.Closed():
	case <-time.After(20 * time.Second):
		t.Fatal("carol's session on her purged mailbox is still open after 20s")
	}
	if _, err := session.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true}).Collect(); err == nil {
		t.Error("FETCH in carol's session after the purge succeeded")
	}
	for _, addr := range []string{"alice@example.test", "bob@example.test"} {
		if n := len(messageFiles(t, dataDir, addr)); n != 1 {
			t.Errorf("%s has %d messages, want 1", addr, n)
		}
	}
	// A purged address is not a mailbox: mail to it is refused, not delivered into a new Maildir.
	for _, addr := range []string{"carol@example.test", "dave@example.test"} {
		if err := sendMail(srv.addrs["smtp"], addr); err == nil || !strings.Contains(err.Error(), "550") {
			t.Errorf("mail to %s: %v, want 550", addr, err)
		}
	}
	if err := sendMail(srv.addrs["smtp"], "alice@example.test"); err != nil {
		t.Fatalf("mail to alice after the purge: %v", err)
	}

	// carol is created again (still listed, so never purged now): an empty mailbox, in use at once.
	writeFile(t, filepath.Join(manifests, "carol.yaml"), carol)
	eventually(t, "mail to the new carol", func() error { return sendMail(srv.addrs["smtp"], "carol@example.test") })
	carolSession(t, srv.addrs["imap"])

	srv.stop()
	err := <-srv.done
	srv.done <- err // for the first server's cleanup
	startServer(t, manifests, withData)
	for addr, want := range map[string]int{"alice@example.test": 2, "bob@example.test": 1, "carol@example.test": 1} {
		if n := len(messageFiles(t, dataDir, addr)); n != want {
			t.Errorf("%s has %d messages after a restart, want %d", addr, n, want)
		}
	}
}

// What an interrupted purge left in the trash is removed at start; the mailboxes are not.
func TestStartEmptiesTrash(t *testing.T) {
	dataDir := t.TempDir()
	left := filepath.Join(dataDir, trashDir, "erin@example.test.1", "cur")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(left, "1.M1P1.host,S=5:2,S"), "hello")
	aliceNew := filepath.Join(dataDir, "mail", "example.test", "alice", "new")
	if err := os.MkdirAll(aliceNew, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(aliceNew, "1.M1P1.host,S=5"), "hello")
	startServer(t, copySamples(t), func(o *Options) { o.DataDir = dataDir })
	if entries, err := os.ReadDir(filepath.Join(dataDir, trashDir)); err != nil || len(entries) != 0 {
		t.Errorf("trash: %v %v, want it empty", entries, err)
	}
	if n := len(messageFiles(t, dataDir, "alice@example.test")); n != 1 {
		t.Errorf("alice has %d messages, want 1", n)
	}
}
