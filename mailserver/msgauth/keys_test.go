package msgauth_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/msgauth"
)

func liveFor(domains ...string) *config.Live {
	cfg := &config.Config{}
	for _, d := range domains {
		cfg.Domains = append(cfg.Domains, config.Domain{Name: d})
	}
	return config.NewLive(config.NewDirectory(cfg))
}

// verifyWith verifies msg against the TXT records in txt.
func verifyWith(t *testing.T, msg string, txt map[string]string) []*dkim.Verification {
	t.Helper()
	verifs, err := dkim.VerifyWithOptions(strings.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return []string{txt[strings.TrimSuffix(name, ".")+"."]}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return verifs
}

// An Ed25519 key is made once, kept with its type, published as k=ed25519, and signs mail that
// verifies; a custom selector names the record.
func TestEd25519KeyMadeOnceAndVerifies(t *testing.T) {
	dir := t.TempDir() + "/dkim"
	k := msgauth.NewKeys(dir, msgauth.KeysOptions{Type: msgauth.Ed25519, Selector: "s1"})
	name, value, err := k.DNSRecord("ex.test")
	if err != nil {
		t.Fatal(err)
	}
	if name != "s1._domainkey.ex.test." || !strings.HasPrefix(value, "v=DKIM1; k=ed25519; p=") {
		t.Fatalf("record %q %q", name, value)
	}
	fi, err := os.Stat(k.Path("ex.test"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	before, _ := os.ReadFile(k.Path("ex.test"))
	// Another process (a restart) with the default type reads the same key, unchanged.
	k2 := msgauth.NewKeys(dir, msgauth.KeysOptions{Selector: "s1"})
	if _, value2, err := k2.DNSRecord("ex.test"); err != nil || value2 != value {
		t.Fatalf("after restart: %q, %v; want %q", value2, err, value)
	}
	after, _ := os.ReadFile(k.Path("ex.test"))
	if !bytes.Equal(before, after) {
		t.Fatal("key file changed")
	}
	s := &msgauth.Signer{Keys: k2, Live: liveFor("ex.test")}
	msg := "From: a@ex.test\r\nTo: b@elsewhere.test\r\nSubject: hi\r\n\r\nHello.\r\n"
	sig, err := s.Sign(context.Background(), strings.NewReader(msg))
	if err != nil || !bytes.Contains(sig, []byte("a=ed25519-sha256")) || !bytes.Contains(sig, []byte("s=s1")) {
		t.Fatalf("signature %q, %v", sig, err)
	}
	verifs := verifyWith(t, string(sig)+msg, map[string]string{name: value})
	if len(verifs) != 1 || verifs[0].Err != nil {
		t.Fatalf("verification: %+v", verifs[0])
	}
	// Relaxed canonicalization: re-folded headers and trailing blanks still verify; a changed
	// body does not.
	relaxed := string(sig) + "From:  a@ex.test \r\nTo: b@elsewhere.test\r\nSubject:\r\n hi\r\n\r\nHello.  \r\n\r\n"
	if v := verifyWith(t, relaxed, map[string]string{name: value}); v[0].Err != nil {
		t.Errorf("relaxed variant: %v", v[0].Err)
	}
	if v := verifyWith(t, string(sig)+strings.Replace(msg, "Hello", "Jello", 1), map[string]string{name: value}); v[0].Err == nil {
		t.Error("a changed body still verifies")
	}
	// A From: added after signing breaks the signature (From is oversigned).
	if v := verifyWith(t, string(sig)+"From: ceo@ex.test\r\n"+msg, map[string]string{name: value}); v[0].Err == nil {
		t.Error("an added From: still verifies")
	}
}

// An existing key is used as it is, never replaced; a damaged one is an error, left alone.
func TestExistingKeyNeverOverwritten(t *testing.T) {
	k := keysFor(t, "a.test") // an RSA key written beforehand
	before, _ := os.ReadFile(k.Path("a.test"))
	if err := k.Ensure([]string{"a.test"}); err != nil {
		t.Fatal(err)
	}
	_, value, err := k.DNSRecord("a.test")
	if err != nil || !strings.HasPrefix(value, "v=DKIM1; k=rsa; p=MII") {
		t.Fatalf("record %q, %v", value, err)
	}
	if after, _ := os.ReadFile(k.Path("a.test")); !bytes.Equal(before, after) {
		t.Fatal("key file changed")
	}
	parts := msgauth.TXTStrings(value)
	if len(parts) < 2 || len(parts[0]) != 255 || strings.Join(parts, "") != value {
		t.Errorf("TXTStrings split %d octets into %d strings", len(value), len(parts))
	}

	if err := os.WriteFile(k.Path("broken.test"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Key("broken.test"); err == nil {
		t.Fatal("a damaged key file was accepted")
	}
	if data, _ := os.ReadFile(k.Path("broken.test")); string(data) != "not a key" {
		t.Fatal("a damaged key file was replaced")
	}
	for _, bad := range []string{"", "../x", ".hidden", "a/b"} {
		if _, err := k.Key(bad); err == nil {
			t.Errorf("key for %q accepted", bad)
		}
	}
}

// Mail whose From: is not one of our domains, or that has no body separator, is not signed.
func TestSignOnlyOurFromDomain(t *testing.T) {
	s := &msgauth.Signer{Keys: keysFor(t, "a.test"), Live: liveFor("a.test")}
	for _, msg := range []string{
		"From: x@other.test\r\nSubject: s\r\n\r\nbody\r\n",
		"From: x@sub.a.test\r\nSubject: s\r\n\r\nbody\r\n",
		"Subject: no from\r\n\r\nbody\r\n",
		"From: x@a.test\r\nSubject: header only\r\n",
	} {
		sig, err := s.Sign(context.Background(), strings.NewReader(msg))
		if err != nil || sig != nil {
			t.Errorf("%q: signature %q, %v; want none", msg, sig, err)
		}
	}
	sig, err := s.Sign(context.Background(), strings.NewReader("From: \"A, B\" <X@A.Test>\r\n\r\nbody\r\n"))
	if err != nil || !bytes.Contains(sig, []byte("d=a.test")) {
		t.Errorf("signature %q, %v; want d=a.test", sig, err)
	}
}

func TestOrganizationalDomain(t *testing.T) {
	for in, want := range map[string]string{
		"a.test": "a.test", "mail.sub.a.test": "a.test", "mail.example.co.uk": "example.co.uk",
		"example.com.": "example.com", "co.uk": "co.uk",
	} {
		if got := msgauth.OrganizationalDomain(in); got != want {
			t.Errorf("OrganizationalDomain(%q) = %q, want %q", in, got, want)
		}
	}
}
