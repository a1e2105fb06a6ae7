package controllers

import (
	"testing"

	"github.com/kubemail/kubemail/mailserver/auth"
)

func TestPasswordHashesKeepAHashWhileThePasswordIsUnchanged(t *testing.T) {
	p := newPasswordHashes()
	used := map[string]string{}
	h1, err := p.hasher("mail/example.test", nil, used)("mail/alice", "first")
	if err != nil || !auth.Verify(h1, "first") || used["alice"] != h1 {
		t.Fatalf("first hash %q (err %v, used %v) does not verify", h1, err, used)
	}
	if h, _ := p.hasher("mail/example.test", nil, used)("mail/alice", "first"); h != h1 {
		t.Error("an unchanged password was hashed again: the domain's Secret would be rewritten")
	}
	h2, _ := p.hasher("mail/example.test", nil, used)("mail/alice", "second")
	if h2 == h1 || !auth.Verify(h2, "second") {
		t.Error("a changed password kept its old hash")
	}

	// After an operator restart the cache is empty: the hash in the domain's Secret is kept.
	restarted := newPasswordHashes()
	if h, _ := restarted.hasher("mail/example.test", map[string]string{"alice": h2}, used)("mail/alice", "second"); h != h2 {
		t.Error("after a restart the hash in the Secret was not reused")
	}
	if h, _ := restarted.hasher("mail/example.test", map[string]string{"alice": h2}, used)("mail/alice", "third"); h == h2 {
		t.Error("a hash of another password was reused")
	}

	// A hash in the Mailbox's Secret is passed on as it is; a malformed one is refused.
	if h, err := p.hasher("mail/example.test", nil, used)("mail/bob", h1); err != nil || h != h1 {
		t.Errorf("a given hash came back as %q, %v", h, err)
	}
	if _, err := p.hasher("mail/example.test", nil, used)("mail/bob", "$argon2id$v=19$garbage"); err == nil {
		t.Error("a malformed hash was accepted")
	}

	p.prune("mail/example.test", map[string]bool{})
	if len(p.cache) != 0 {
		t.Errorf("prune left %d entries of deleted Mailboxes", len(p.cache))
	}
}
