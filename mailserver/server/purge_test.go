package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

// A Mailbox deleted with the purge annotation set loses its mail, others keep theirs: an
// address never open in the running server is purged on reload, one that was open (carol, who
// got mail) at the next start; a listed address that is a mailbox again is never touched.
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
	eventually(t, "dave's Maildir is purged on reload", func() error {
		if files := messageFiles(t, dataDir, "dave@example.test"); files != nil {
			return fmt.Errorf("dave still has %v", files)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(dataDir, "mail", "example.test", "dave")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dave's mailbox directory is still there: %v", err)
	}
	if !strings.Contains(srv.log.String(), "Deferred purging a deleted mailbox") {
		t.Errorf("no log line says carol's purge waits for a restart:\n%s", srv.log.String())
	}
	for _, addr := range []string{"alice@example.test", "bob@example.test", "carol@example.test"} {
		if n := len(messageFiles(t, dataDir, addr)); n != 1 {
			t.Errorf("%s has %d messages before the restart, want 1", addr, n)
		}
	}
	// A purged address is not a mailbox: mail to it is refused, not delivered into a new Maildir.
	if err := sendMail(srv.addrs["smtp"], "dave@example.test"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("mail to dave: %v, want 550", err)
	}
	if err := sendMail(srv.addrs["smtp"], "alice@example.test"); err != nil {
		t.Fatalf("mail to alice after the purge: %v", err)
	}

	srv.stop()
	err := <-srv.done
	srv.done <- err // for the first server's cleanup
	srv = startServer(t, manifests, withData)
	if files := messageFiles(t, dataDir, "carol@example.test"); files != nil {
		t.Errorf("carol's mail is still there after the restart: %v", files)
	}
	if n := len(messageFiles(t, dataDir, "alice@example.test")); n != 2 {
		t.Errorf("alice has %d messages, want her 2: a listed address that is a mailbox must keep its mail", n)
	}
	if n := len(messageFiles(t, dataDir, "bob@example.test")); n != 1 {
		t.Errorf("bob has %d messages, want 1", n)
	}
	if entries, err := os.ReadDir(filepath.Join(dataDir, trashDir)); err != nil || len(entries) != 0 {
		t.Errorf("trash: %v %v, want it empty", entries, err)
	}
	if !strings.Contains(srv.log.String(), `msg="Purged a deleted mailbox" mailbox=carol@example.test`) {
		t.Errorf("no log line for carol's purge:\n%s", srv.log.String())
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
