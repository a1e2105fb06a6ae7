package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// carolSecret is a valid Secret for the Mailbox the bad manifests below declare.
const carolSecret = `
---
apiVersion: v1
kind: Secret
metadata: {name: carol-pw}
stringData: {password: carol-password}
`

// A bad manifest next to the valid samples stops start-up: the server exits non-zero before it
// serves anything, and its message names the file, the object and the field, so an administrator
// can fix it without guessing.
func TestBadManifestsStopStartup(t *testing.T) {
	for _, tc := range []struct {
		name     string
		manifest string
		want     []string // each must appear in the output
	}{{
		name: "unknown kind",
		manifest: `apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: team}
spec: {address: team@example.test}
`,
		want: []string{"MailGroup", "team", "kind"},
	}, {
		name: "unknown field",
		manifest: `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol-example-test}
spec:
  adress: carol@example.test
  passwordSecretRef: {name: carol-pw, key: password}
` + carolSecret,
		want: []string{"carol-example-test", "adress"},
	}, {
		name: "wrong type",
		manifest: `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol-example-test}
spec:
  address: carol@example.test
  aliases: carol.c@example.test
  passwordSecretRef: {name: carol-pw, key: password}
` + carolSecret,
		want: []string{"carol-example-test", "aliases"},
	}, {
		name: "mailbox outside every MailDomain",
		manifest: `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol-example-test}
spec:
  address: carol@other.test
  passwordSecretRef: {name: carol-pw, key: password}
` + carolSecret,
		want: []string{"carol-example-test", "address", "other.test"},
	}, {
		name: "missing Secret",
		manifest: `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol-example-test}
spec:
  address: carol@example.test
  passwordSecretRef: {name: carol-pw-nowhere, key: password}
`,
		want: []string{"carol-example-test", "passwordSecretRef", "carol-pw-nowhere"},
	}, {
		name: "missing Secret key",
		manifest: `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol-example-test}
spec:
  address: carol@example.test
  passwordSecretRef: {name: carol-pw, key: passphrase}
` + carolSecret,
		want: []string{"carol-example-test", "passwordSecretRef", "passphrase"},
	}, {
		name: "duplicate address",
		manifest: `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol-example-test}
spec:
  address: alice@example.test
  passwordSecretRef: {name: carol-pw, key: password}
` + carolSecret,
		want: []string{"carol-example-test", "address", "alice@example.test"},
	}, {
		name: "alias that is another mailbox's address",
		manifest: `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol-example-test}
spec:
  address: carol@example.test
  aliases: [bob@example.test]
  passwordSecretRef: {name: carol-pw, key: password}
` + carolSecret,
		want: []string{"carol-example-test", "aliases", "bob@example.test"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copySamples(t)
			writeFile(t, filepath.Join(dir, "zz-bad.yaml"), tc.manifest)
			code, out := runServerToExit(t, dir)
			if code == 0 {
				t.Fatalf("server exited 0 with a bad manifest; output:\n%s", out)
			}
			for _, w := range append([]string{"zz-bad.yaml"}, tc.want...) {
				if !strings.Contains(out, w) {
					t.Errorf("error output does not name %q:\n%s", w, out)
				}
			}
			if servingLine.MatchString(out) {
				t.Errorf("server logged Serving before refusing the manifests:\n%s", out)
			}
		})
	}
}

// The samples themselves start cleanly: the baseline every bad case above differs from.
func TestSamplesStart(t *testing.T) {
	srv := newSamplesServer(t)
	srv.stop()
}
