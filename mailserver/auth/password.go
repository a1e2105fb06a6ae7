// Package auth checks mailbox credentials for IMAP and SMTP submission.
//
// Passwords are kept only as hashes: argon2id (the default, OWASP parameters m=19 MiB, t=2, p=1)
// or bcrypt, in their standard string forms, so hashes made by other tools (doveadm pw,
// htpasswd -B, mkpasswd) work as they are.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argon2id parameters for new hashes (OWASP Password Storage Cheat Sheet, 2023).
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

var b64 = base64.RawStdEncoding

// Hash returns an argon2id hash of password in PHC string form.
func Hash(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading random salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemoryKiB, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// IsHash reports whether s looks like a hash Verify understands, rather than a plain password.
func IsHash(s string) bool {
	return strings.HasPrefix(s, "$argon2id$") || isBcrypt(s)
}

func isBcrypt(s string) bool {
	return len(s) == 60 && (strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$"))
}

// CheckHash returns an error that says what is wrong with a hash Verify could never match.
func CheckHash(hash string) error {
	switch {
	case isBcrypt(hash):
		_, err := bcrypt.Cost([]byte(hash))
		return err
	case strings.HasPrefix(hash, "$argon2id$"):
		_, _, _, err := parseArgon2id(hash)
		return err
	}
	return errors.New("not an argon2id or bcrypt hash")
}

// Verify reports whether password matches hash, in time independent of where they differ.
func Verify(hash, password string) bool {
	if isBcrypt(hash) {
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	}
	p, salt, key, err := parseArgon2id(hash)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

func parseArgon2id(hash string) (argonParams, []byte, []byte, error) {
	var p argonParams
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("argon2id hash must have the form $argon2id$v=19$m=M,t=T,p=P$salt$key")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, fmt.Errorf("argon2id version %q is not v=%d", parts[2], argon2.Version)
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return p, nil, nil, fmt.Errorf("argon2id parameters %q: %w", parts[3], err)
	}
	if p.memory == 0 || p.memory > 4<<20 || p.time == 0 || p.time > 64 || p.threads == 0 {
		return p, nil, nil, fmt.Errorf("argon2id parameters %q are out of range", parts[3])
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, fmt.Errorf("argon2id salt: %w", err)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return p, nil, nil, errors.New("argon2id key is not base64 of at least 16 bytes")
	}
	return p, salt, key, nil
}
