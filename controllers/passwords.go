package controllers

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/config"
)

// passwordHashes turns the passwords in Mailboxes' Secrets into the hashes the mail server gets.
// A hash is expensive (argon2id, 19 MiB) and salted, so a new one for an unchanged password
// would rewrite the domain's Secret on every reconcile; instead a hash is kept while its password
// is unchanged: remembered in memory, or, after an operator restart, verified against the hash
// already in the domain's Secret.
type passwordHashes struct {
	mu    sync.Mutex
	cache map[string]hashEntry // "namespace/name" of the Mailbox -> hash
}

type hashEntry struct {
	sum    [32]byte // sha256 of key and password
	hash   string
	domain string // "namespace/domain" whose reconcile made the entry, for prune
}

func newPasswordHashes() *passwordHashes {
	return &passwordHashes{cache: map[string]hashEntry{}}
}

// hasher returns the config.PasswordHasher for one reconcile of domain ("namespace/domain").
// previous maps Mailbox names to the hashes in the domain's Secret; used records the hash given
// to each Mailbox name.
func (p *passwordHashes) hasher(domain string, previous map[string]string, used map[string]string) config.PasswordHasher {
	return func(key, password string) (string, error) {
		name := nameOf(key)
		if auth.IsHash(password) {
			if err := auth.CheckHash(password); err != nil {
				return "", fmt.Errorf("the Secret holds a malformed password hash: %w", err)
			}
			used[name] = password
			return password, nil
		}
		sum := sha256.Sum256([]byte(key + "\x00" + password))
		p.mu.Lock()
		e, ok := p.cache[key]
		p.mu.Unlock()
		if !ok || e.sum != sum {
			e = hashEntry{sum: sum, domain: domain}
			if old, ok := previous[name]; ok && auth.Verify(old, password) {
				e.hash = old
			} else {
				h, err := auth.Hash(password)
				if err != nil {
					return "", err
				}
				e.hash = h
			}
			p.mu.Lock()
			p.cache[key] = e
			p.mu.Unlock()
		}
		used[name] = e.hash
		return e.hash, nil
	}
}

// prune drops the entries of domain ("namespace/domain") whose Mailbox is not in keep (by
// "namespace/name"): deleted Mailboxes leave nothing behind in the operator's memory.
func (p *passwordHashes) prune(domain string, keep map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, e := range p.cache {
		if e.domain == domain && !keep[key] {
			delete(p.cache, key)
		}
	}
}

// nameOf is the name in a "namespace/name" key.
func nameOf(key string) string {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[i+1:]
		}
	}
	return key
}
