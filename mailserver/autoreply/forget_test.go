package autoreply_test

import (
	"os"
	"path/filepath"
	"testing"
)

// A purged mailbox's record of whom it answered goes with its mail: the file is removed, and a
// Mailbox made again with the address answers the same sender afresh.
func TestForgetAPurgedMailbox(t *testing.T) {
	s := newSetup(t, awayBlock)
	s.deliver("carol@remote.test", message(""))
	record := filepath.Join(s.dataDir, "alice@example.test.json")
	if _, err := os.Stat(record); err != nil {
		t.Fatalf("no record after a reply: %v", err)
	}
	if err := s.r.Forget("alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Fatalf("the record is still there after Forget (%v)", err)
	}
	if err := s.r.Forget("alice@example.test"); err != nil { // nothing left: not an error
		t.Fatal(err)
	}
	s.deliver("carol@remote.test", message(""))
	if n := len(s.replies(t)); n != 2 {
		t.Fatalf("%d replies, want 2: the forgotten sender is answered again", n)
	}
}
