package auth

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/kubemail/kubemail/mailserver/config"
)

// NewHasher returns the config.PasswordHasher the server resolves its config with. A Secret may
// hold a hash (used as it is, after a syntax check) or a plain password (hashed with argon2id).
// Plain passwords are hashed once per mailbox and password: a reload that does not change a
// password reuses its hash instead of spending argon2id's time and memory again.
func NewHasher() config.PasswordHasher {
	type entry struct {
		sum  [32]byte
		hash string
	}
	var mu sync.Mutex
	cache := map[string]entry{}
	return func(key, password string) (string, error) {
		if IsHash(password) {
			if err := CheckHash(password); err != nil {
				return "", fmt.Errorf("the Secret holds a malformed password hash: %w", err)
			}
			return password, nil
		}
		sum := sha256.Sum256([]byte(key + "\x00" + password))
		mu.Lock()
		e, ok := cache[key]
		mu.Unlock()
		if ok && e.sum == sum {
			return e.hash, nil
		}
		hash, err := Hash(password)
		if err != nil {
			return "", err
		}
		mu.Lock()
		cache[key] = entry{sum: sum, hash: hash}
		mu.Unlock()
		return hash, nil
	}
}
