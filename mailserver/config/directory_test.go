package config

import "testing"

func TestDirectoryLookup(t *testing.T) {
	cfg := &Config{
		Domains: []Domain{{Name: "example.test", MaxMessageSize: 1 << 20}, {Name: "big.test", MaxMessageSize: 50 << 20}},
		Mailboxes: []Mailbox{
			{Address: "alice@example.test", Aliases: []string{"postmaster@example.test"}},
			{Address: "bob@example.test"},
			{Address: "bob-lists@example.test"},
		},
	}
	d := NewDirectory(cfg)
	tests := map[string]string{
		"alice@example.test":            "alice@example.test",
		"ALICE@Example.TEST":            "alice@example.test",
		"postmaster@example.test":       "alice@example.test",
		"alice+news@example.test":       "alice@example.test",
		"postmaster+x@example.test":     "alice@example.test",
		"bob-lists@example.test":        "bob-lists@example.test",
		"carol@example.test":            "",
		"alice@other.test":              "",
		"+alice@example.test":           "",
		"alice":                         "",
		"alice@":                        "",
		"alice+a+b@example.test":        "alice@example.test",
		"alice%other.test@example.test": "",
	}
	for addr, want := range tests {
		got := ""
		if mb := d.Lookup(addr); mb != nil {
			got = mb.Address
		}
		if got != want {
			t.Errorf("Lookup(%q) = %q, want %q", addr, got, want)
		}
	}
	if d.Mailbox("postmaster@example.test") != nil {
		t.Error("an alias is not a login name")
	}
	if d.Mailbox("Alice@example.test") == nil {
		t.Error("login names are case-insensitive")
	}
	if d.Domain("EXAMPLE.test.") == nil || d.Domain("other.test") != nil {
		t.Error("Domain lookup")
	}
	if d.MaxMessageSize() != 50<<20 {
		t.Errorf("MaxMessageSize = %d", d.MaxMessageSize())
	}
}

func TestCheckAddress(t *testing.T) {
	for _, bad := range []string{"a/b@example.test", "a+b@example.test", "a%b@example.test", "a..b@example.test",
		".a@example.test", "a@localhost", "a@-x.test", "@example.test", "a b@example.test", "a@exa_mple.test"} {
		if _, _, err := CheckAddress(bad); err == nil {
			t.Errorf("CheckAddress(%q) accepted", bad)
		}
	}
	for _, good := range []string{"a@example.test", "first.last@sub.example.test", "o'brien@example.test", "x@xn--bcher-kva.test"} {
		if _, _, err := CheckAddress(good); err != nil {
			t.Errorf("CheckAddress(%q): %v", good, err)
		}
	}
}
