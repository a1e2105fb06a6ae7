package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A value its type cannot parse (a time that is not RFC 3339, a quantity that is not one) is
// refused with an error that names the field by its path in the object, as a type mismatch is,
// with the value given.
func TestLoadManifestsNamesTheFieldOfAnUnparsableValue(t *testing.T) {
	domain := "apiVersion: mail.kubemail.io/v1alpha1\nkind: MailDomain\nmetadata: {name: d}\nspec: {domain: example.test}\n---\n"
	secret := "---\napiVersion: v1\nkind: Secret\nmetadata: {name: pw}\nstringData: {password: x}\n"
	mailbox := func(spec string) string {
		return "apiVersion: mail.kubemail.io/v1alpha1\nkind: Mailbox\nmetadata: {name: m}\nspec: {address: a@example.test, passwordSecretRef: {name: pw, key: password}, " + spec + "}\n"
	}
	for _, tt := range []struct {
		name, yaml string
		want       []string
	}{
		{"autoReply start not a time", domain + mailbox("autoReply: {start: tomorrow, body: Away}") + secret,
			[]string{"bad.yaml (document 2)", `Mailbox "default/m"`, "spec.autoReply.start", `"tomorrow"`}},
		{"autoReply end not a time", domain + mailbox("autoReply: {end: '2026-13-01', body: Away}") + secret,
			[]string{`Mailbox "default/m"`, "spec.autoReply.end", `"2026-13-01"`}},
		{"quota not a quantity", domain + mailbox("quota: lots") + secret,
			[]string{`Mailbox "default/m"`, "spec.quota", `"lots"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadManifests(dir, plainHasher)
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// A type mismatch is named by the decoder itself: the path is not said twice.
func TestTypeMismatchNamedOnce(t *testing.T) {
	dir := t.TempDir()
	doc := "apiVersion: mail.kubemail.io/v1alpha1\nkind: Mailbox\nmetadata: {name: m}\nspec: {address: a@example.test, aliases: b@example.test}\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadManifests(dir, plainHasher)
	if err == nil || strings.Count(err.Error(), "spec.aliases") != 1 {
		t.Errorf("error %v, want one naming spec.aliases once", err)
	}
}
