package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A damaged or lost folder index (kubemail-index, see mailserver/store) does not stop the server
// or lose mail: after a restart every message is there with its flags (which live in the Maildir
// file names), and a new, larger UIDVALIDITY tells clients to resynchronise (RFC 9051 2.3.1.1).
func TestDamagedIndexIsRebuilt(t *testing.T) {
	for _, damage := range []struct {
		name string
		do   func(path string) error
	}{
		{"garbage", func(p string) error {
			return os.WriteFile(p, []byte("kubemail-index 1\nuidvalidity x\x00\xff\n"), 0o600)
		}},
		{"truncated", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, b[:len(b)/2], 0o600)
		}},
		{"missing", os.Remove},
	} {
		t.Run(damage.name, func(t *testing.T) {
			dataDir := t.TempDir()
			srv := startServer(t, copySamples(t), dataDir, newTestCert(t))
			const user = "alice@example.test"
			for i := range 2 {
				srv.sendMail(t, user, fmt.Sprintf("before damage %d", i), testBody(fmt.Sprint(i)))
			}
			before := srv.imapDump(t, user, alicePassword)
			if len(before.Messages) != 2 {
				t.Fatalf("INBOX has %d messages, want 2", len(before.Messages))
			}
			var ok struct{ OK bool }
			srv.imapClient(t, user, alicePassword, &ok, "store", fmt.Sprint(before.Messages[0].UID), `\Flagged`)

			srv.stop()
			index := filepath.Join(dataDir, "mail", "example.test", "alice", "kubemail-index")
			if err := damage.do(index); err != nil {
				t.Fatalf("damaging %s: %v", index, err)
			}
			srv.start()

			after := srv.imapDump(t, user, alicePassword)
			if len(after.Messages) != 2 {
				t.Fatalf("after rebuilding the index INBOX has %d messages, want 2", len(after.Messages))
			}
			if after.UIDValidity <= before.UIDValidity {
				t.Errorf("UIDVALIDITY %d after the rebuild, want one larger than %d", after.UIDValidity, before.UIDValidity)
			}
			flagged := 0
			for _, m := range after.Messages {
				for _, f := range m.Flags {
					if f == `\Flagged` {
						flagged++
					}
				}
			}
			if flagged != 1 {
				t.Errorf("after the rebuild %d messages are \\Flagged, want 1: %+v", flagged, after.Messages)
			}

			srv.sendMail(t, user, "after rebuild", testBody("after rebuild"))
			if n := len(srv.imapDump(t, user, alicePassword).Messages); n != 3 {
				t.Errorf("INBOX has %d messages after one more delivery, want 3", n)
			}
		})
	}
}
