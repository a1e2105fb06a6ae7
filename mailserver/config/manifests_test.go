package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// plainHasher keeps passwords recognisable so tests can see which Secret value was used; the
// real hasher (auth.NewHasher) is tested in mailserver/auth.
func plainHasher(_, password string) (string, error) { return "plain:" + password, nil }

const goodManifests = `
apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: example-test}
spec: {domain: Example.Test, maxMessageSize: 10Mi, maxRecipients: 5, dmarc: {onReject: deliver}}
---
# a comment-only document is skipped
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: alice}
spec:
  address: Alice@example.test
  aliases: [postmaster@example.test, alice@example.test]
  passwordSecretRef: {name: alice-pw, key: password}
---
apiVersion: v1
kind: Secret
metadata: {name: alice-pw}
data: {password: c2VjcmV0Cg==} # "secret\n": the trailing newline of echo is dropped
`

func writeManifests(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadManifests(t *testing.T) {
	dir := writeManifests(t, map[string]string{"all.yaml": goodManifests, "README.md": "not a manifest"})
	cfg, err := LoadManifests(dir, plainHasher)
	if err != nil {
		t.Fatal(err)
	}
	want := Domain{Name: "example.test", MaxMessageSize: 10 << 20, MaxRecipients: 5, IgnoreDMARCReject: true}
	if len(cfg.Domains) != 1 || cfg.Domains[0] != want {
		t.Errorf("domains = %+v, want [%+v]", cfg.Domains, want)
	}
	if len(cfg.Mailboxes) != 1 {
		t.Fatalf("mailboxes = %+v", cfg.Mailboxes)
	}
	mb := cfg.Mailboxes[0]
	if mb.Address != "alice@example.test" || strings.Join(mb.Aliases, ",") != "postmaster@example.test" || mb.PasswordHash != "plain:secret" {
		t.Errorf("mailbox = %+v", mb)
	}
}

func TestSamplesLoad(t *testing.T) {
	cfg, err := LoadManifests("../../config/samples", plainHasher)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDirectory(cfg)
	for addr, want := range map[string]string{
		"alice@example.test": "alice@example.test", "postmaster@example.test": "alice@example.test",
		"bob@example.test": "bob@example.test",
	} {
		if mb := d.Lookup(addr); mb == nil || mb.Address != want {
			t.Errorf("Lookup(%q) = %+v, want %s", addr, mb, want)
		}
	}
	if got := d.Mailbox("bob@example.test").PasswordHash; got != "plain:bob-password" {
		t.Errorf("bob's password from base64 data = %q", got)
	}
}

// Every bad manifest stops loading with an error naming the file, the object and the field.
func TestLoadManifestsErrors(t *testing.T) {
	domain := "apiVersion: mail.kubemail.io/v1alpha1\nkind: MailDomain\nmetadata: {name: d}\nspec: {domain: example.test}\n---\n"
	secret := "---\napiVersion: v1\nkind: Secret\nmetadata: {name: pw}\nstringData: {password: x}\n"
	mailbox := func(spec string) string {
		return "apiVersion: mail.kubemail.io/v1alpha1\nkind: Mailbox\nmetadata: {name: m}\nspec: " + spec + "\n"
	}
	ref := "passwordSecretRef: {name: pw, key: password}"
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown kind", domain + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			[]string{"bad.yaml (document 2)", `ConfigMap "default/c"`, `kind "ConfigMap"`}},
		{"unknown field", domain + mailbox("{address: a@example.test, "+ref+", quotaBytes: 1Gi}") + secret,
			[]string{"bad.yaml (document 2)", `Mailbox "default/m"`, `unknown field "spec.quotaBytes"`}},
		{"negative quota", domain + mailbox("{address: a@example.test, "+ref+", quota: -1Gi}") + secret,
			[]string{"bad.yaml (document 2)", `Mailbox "default/m"`, "spec.quota", "-1Gi"}},
		{"unknown reclaim policy", domain + mailbox("{address: a@example.test, "+ref+", reclaimPolicy: Recycle}") + secret,
			[]string{"bad.yaml (document 2)", `Mailbox "default/m"`, "spec.reclaimPolicy", `"Recycle"`}},
		{"wrong type", domain + mailbox("{address: a@example.test, aliases: b@example.test, "+ref+"}") + secret,
			[]string{"bad.yaml (document 2)", `Mailbox "default/m"`, "spec.aliases", "[]string"}},
		{"mailbox outside every domain", domain + mailbox("{address: a@other.test, "+ref+"}") + secret,
			[]string{"bad.yaml (document 2)", `Mailbox "default/m"`, "spec.address", `"other.test"`, "not served"}},
		{"missing secret", domain + mailbox("{address: a@example.test, passwordSecretRef: {name: nope, key: password}}"),
			[]string{"bad.yaml (document 2)", "spec.passwordSecretRef.name", `Secret "default/nope" not found`}},
		{"missing key", domain + mailbox("{address: a@example.test, passwordSecretRef: {name: pw, key: pass}}") + secret,
			[]string{"spec.passwordSecretRef.key", `no key "pass"`}},
		{"duplicate address", domain + mailbox("{address: a@example.test, "+ref+"}") + secret +
			"---\napiVersion: mail.kubemail.io/v1alpha1\nkind: Mailbox\nmetadata: {name: m2}\nspec: {address: b@example.test, aliases: [A@example.test], " + ref + "}\n",
			[]string{"bad.yaml (document 4)", `Mailbox "default/m2"`, "spec.aliases", `"a@example.test" is already taken by Mailbox default/m`}},
		{"duplicate object", domain + domain, []string{"MailDomain default/d is declared again"}},
		{"bad domain", "apiVersion: mail.kubemail.io/v1alpha1\nkind: MailDomain\nmetadata: {name: d}\nspec: {domain: 'exa mple.test'}\n",
			[]string{`MailDomain "default/d"`, "spec.domain"}},
		{"bad DMARC action", "apiVersion: mail.kubemail.io/v1alpha1\nkind: MailDomain\nmetadata: {name: d}\nspec: {domain: example.test, dmarc: {onReject: quarantine}}\n",
			[]string{`MailDomain "default/d"`, "spec.dmarc.onReject", `"quarantine"`}},
		{"no kind", "metadata: {name: x}\n", []string{"apiVersion and kind are required"}},
		{"not yaml", "a: [1\n", []string{"bad.yaml (document 1)", "not valid YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeManifests(t, map[string]string{"bad.yaml": tt.yaml})
			_, err := LoadManifests(dir, plainHasher)
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, "bad.yaml")) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadManifestsEmptyDir(t *testing.T) {
	if _, err := LoadManifests(t.TempDir(), plainHasher); err == nil || !strings.Contains(err.Error(), "no .yaml") {
		t.Errorf("err = %v", err)
	}
}
