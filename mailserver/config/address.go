package config

import (
	"errors"
	"fmt"
	"strings"
)

// CheckDomain reports whether name is a domain kubemail can serve: lower-case ASCII (IDNs in
// their A-label "xn--" form) of dot-separated labels of letters, digits and hyphens.
func CheckDomain(name string) error {
	if name == "" {
		return errEmpty
	}
	if len(name) > 253 {
		return errors.New("is longer than 253 characters")
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return fmt.Errorf("%q is not a fully qualified domain name such as example.com", name)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q has an empty, overlong or hyphen-edged label %q", name, l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q has the character %q; use letters, digits, hyphens (IDNs as xn-- A-labels)", name, c)
			}
		}
	}
	return nil
}

// CheckAddress checks a mailbox address an administrator declares and returns its lower-cased
// halves. The local part is an RFC 5322 dot-atom without '/' (it names a directory on disk) and
// without '+' (the plus-address separator) or '%' and '!' (old relay syntaxes).
func CheckAddress(addr string) (local, domain string, err error) {
	local, domain, ok := SplitAddress(addr)
	if !ok {
		return "", "", fmt.Errorf("%q is not an address of the form local@domain", addr)
	}
	if err := CheckDomain(domain); err != nil {
		return "", "", fmt.Errorf("domain of %q: %w", addr, err)
	}
	if len(local) > 64 {
		return "", "", fmt.Errorf("local part of %q is longer than 64 characters", addr)
	}
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			return "", "", fmt.Errorf("local part of %q has an empty dot-separated part", addr)
		}
		for _, c := range atom {
			if !isAddressChar(c) {
				return "", "", fmt.Errorf("local part of %q has the character %q, which kubemail does not allow in mailbox addresses", addr, c)
			}
		}
	}
	return local, domain, nil
}

// isAddressChar is RFC 5322 atext less '/', '+', '%' and '!'.
func isAddressChar(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return true
	case strings.ContainsRune("#$&'*-=?^_`{|}~", c):
		return true
	}
	return false
}
