package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/internal/dnstest"
	"github.com/kubemail/kubemail/mailserver/msgauth"
)

// kubemailDNS runs `kubemail dns args...` and returns its exit status and output.
func kubemailDNS(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := dnsMain(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// dnsManifests writes a manifests directory like config/samples: one MailDomain, one Mailbox.
func dnsManifests(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	yaml := `apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata:
  name: example-test
spec:
  domain: Example.TEST
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata:
  name: alice-example-test
spec:
  address: alice@example.test
  passwordSecretRef: {name: alice-pw, key: password}
---
apiVersion: v1
kind: Secret
metadata:
  name: alice-pw
stringData:
  password: alice-password
`
	if err := os.WriteFile(filepath.Join(dir, "example-test.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// zoneLines are the record lines of `kubemail dns` output, without the comments.
func zoneLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" && !strings.HasPrefix(l, ";") {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestDNSCommand(t *testing.T) {
	manifests := dnsManifests(t)
	dataDir := t.TempDir()
	const ip = "192.0.2.25"
	args := []string{"--manifests", manifests, "--data-dir", dataDir, "--public-ip", ip}

	// Before the server ever ran there is no DKIM key, and kubemail dns does not make one.
	code, out, errOut := kubemailDNS(args...)
	if code != 0 || !strings.Contains(out, "start the server once to make the DKIM key") || strings.Contains(out, "DKIM1") {
		t.Errorf("without a DKIM key: exit %d, want the records but DKIM's, and how to make the key:\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "dkim")); !os.IsNotExist(err) {
		t.Errorf("kubemail dns made the DKIM key directory: %v", err)
	}

	// The key as the server makes it at start (mailserver/server's ensureDKIMKeys).
	keys := msgauth.NewKeys(filepath.Join(dataDir, "dkim"), msgauth.KeysOptions{})
	if _, _, err := keys.DNSRecord("example.test"); err != nil {
		t.Fatal(err)
	}
	key, err := keys.Key("example.test")
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut = kubemailDNS(args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Logf("kubemail dns:\n%s", out)
	lines := zoneLines(out)
	want := []*regexp.Regexp{
		regexp.MustCompile(`^example\.test\. +IN MX +10 mail\.example\.test\.$`),
		regexp.MustCompile(`^mail\.example\.test\. +IN A +192\.0\.2\.25$`),
		regexp.MustCompile(`^example\.test\. +IN TXT +"v=spf1 mx ~all"$`),
		regexp.MustCompile(`^kubemail\._domainkey\.example\.test\. +IN TXT +"v=DKIM1; k=rsa; p=[^"]+"( "[^"]+")*$`),
		regexp.MustCompile(`^_dmarc\.example\.test\. +IN TXT +"v=DMARC1; p=none; rua=mailto:postmaster@example\.test"$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(lines), len(want), out)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("record %d: %q, want %s", i, lines[i], re)
		}
	}
	// The DKIM record publishes the server's key: its strings joined, p= is the public key.
	dkim := strings.Join(regexp.MustCompile(`"([^"]*)"`).FindAllString(strings.SplitN(lines[3], "TXT", 2)[1], -1), "")
	dkim = strings.ReplaceAll(dkim, `"`, "")
	_, p, _ := strings.Cut(dkim, "p=")
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		t.Fatalf("DKIM p=: %v", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Error("the DKIM record publishes another key than the server's")
	}
	if !strings.Contains(out, "; Reverse DNS:") || !strings.Contains(out, ";   25.2.0.192.in-addr.arpa. IN PTR mail.example.test.") {
		t.Errorf("no PTR record to ask the IP owner for:\n%s", out)
	}

	// --check against a DNS server without the records: each is named missing, exit 1.
	ns := dnstest.Start(t)
	check := append(args, "--check", "--dns-resolver", ns.Addr)
	code, out, errOut = kubemailDNS(check...)
	t.Logf("kubemail dns --check, nothing published:\n%s%s", out, errOut)
	if code != 1 {
		t.Errorf("nothing published: exit %d, want 1", code)
	}
	for _, rec := range []string{"MX example.test.", "A mail.example.test.", "TXT example.test.",
		"TXT kubemail._domainkey.example.test.", "TXT _dmarc.example.test.", "PTR 192.0.2.25"} {
		if !regexp.MustCompile(`(?m)^  missing +` + regexp.QuoteMeta(rec)).MatchString(out) {
			t.Errorf("nothing published: %s not reported missing", rec)
		}
	}

	// Published as printed (the zone lines pasted into the zone), the PTR set by the IP owner:
	// everything OK, exit 0.
	ns.Publish(t, zoneLines(kubemailDNSOut(t, args...))...)
	ns.AddPTR(ip, "mail.example.test.")
	code, out, errOut = kubemailDNS(check...)
	t.Logf("kubemail dns --check, all published:\n%s%s", out, errOut)
	if code != 0 || strings.Count(out, "  OK ") != 6 || !strings.Contains(out, "All 6 records of example.test are published.") {
		t.Errorf("all published: exit %d, want 0 and 6 records OK:\n%s", code, out)
	}

	// An MX record naming another host is wrong, and says what it found.
	ns.SetMX("example.test.", &net.MX{Host: "mx.elsewhere.test.", Pref: 10})
	code, out, _ = kubemailDNS(check...)
	if code != 1 || !strings.Contains(out, "  wrong    MX example.test.: found MX mx.elsewhere.test., not mail.example.test.") {
		t.Errorf("wrong MX: exit %d:\n%s", code, out)
	}
}

func kubemailDNSOut(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := kubemailDNS(args...)
	if code != 0 {
		t.Fatalf("kubemail dns: exit %d: %s", code, errOut)
	}
	return out
}

func TestDNSCommandUsage(t *testing.T) {
	if code, _, errOut := kubemailDNS("--help"); code != 0 || !strings.Contains(errOut, "Usage: kubemail dns") || !strings.Contains(errOut, "--check") {
		t.Errorf("--help: exit %d:\n%s", code, errOut)
	}
	manifests := dnsManifests(t)
	for _, args := range [][]string{
		{"--manifests", manifests, "--public-ip", "mail.example.test"},
		{"--manifests", manifests, "--check", "--dns-resolver", "127.0.0.1"},
		{"--manifests", manifests, "extra"},
	} {
		if code, _, errOut := kubemailDNS(args...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage): %s", args, code, errOut)
		}
	}
	noDomain := t.TempDir()
	if err := os.WriteFile(filepath.Join(noDomain, "s.yaml"), []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := kubemailDNS("--manifests", noDomain); code != 1 || !strings.Contains(errOut, "declares no MailDomain") {
		t.Errorf("no MailDomain: exit %d: %s", code, errOut)
	}
}

// Several domains on one server name one mail host (--hostname): its address belongs in its
// own zone, and goes into another domain's zone only as a comment.
func TestDNSCommandSharedHost(t *testing.T) {
	manifests := dnsManifests(t)
	other := "apiVersion: mail.kubemail.io/v1alpha1\nkind: MailDomain\nmetadata: {name: other}\nspec: {domain: other.test}\n"
	if err := os.WriteFile(filepath.Join(manifests, "other.yaml"), []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	out := kubemailDNSOut(t, "--manifests", manifests, "--data-dir", t.TempDir(), "--hostname", "mail.example.test", "--public-ip", "2001:db8::25")
	t.Logf("kubemail dns:\n%s", out)
	example, otherOut, ok := strings.Cut(out, "; other.test:")
	if !ok || !strings.HasPrefix(example, "; example.test:") {
		t.Fatalf("want example.test's records, then other.test's:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^mail\.example\.test\. +IN AAAA +2001:db8::25$`).MatchString(example) {
		t.Errorf("example.test's zone lacks the mail host's AAAA record:\n%s", example)
	}
	if !regexp.MustCompile(`(?m)^other\.test\. +IN MX +10 mail\.example\.test\.$`).MatchString(otherOut) {
		t.Errorf("other.test's MX does not name the shared host:\n%s", otherOut)
	}
	for _, l := range zoneLines(otherOut) {
		if strings.Contains(l, "mail.example.test. ") && !strings.Contains(l, " MX ") {
			t.Errorf("other.test's zone gets a record of another zone: %q", l)
		}
	}
	if !strings.Contains(otherOut, ";   mail.example.test. IN AAAA 2001:db8::25") {
		t.Errorf("other.test's output does not say where the host's address goes:\n%s", otherOut)
	}
}
