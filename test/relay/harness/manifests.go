package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Mailbox is one mailbox of a domain's manifests.
type Mailbox struct{ Local, Password string }

// WriteDomain writes the manifests of a MailDomain and its mailboxes into dir/domain.yaml, and
// policy (a RelayPolicy spec in YAML flow style, e.g. "{trustedNetworks: [127.0.0.0/8]}") into
// dir/policy.yaml unless it is empty.
func WriteDomain(dir, domain string, mailboxes []Mailbox, policy string) error {
	name := strings.ReplaceAll(domain, ".", "-")
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: mail.kubemail.io/v1alpha1\nkind: MailDomain\nmetadata: {name: %s}\nspec: {domain: %s}\n", name, domain)
	for _, m := range mailboxes {
		fmt.Fprintf(&b, `---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: %[1]s-%[2]s}
spec:
  address: %[1]s@%[3]s
  passwordSecretRef: {name: %[1]s-%[2]s-pw, key: password}
---
apiVersion: v1
kind: Secret
metadata: {name: %[1]s-%[2]s-pw}
stringData: {password: %[4]s}
`, m.Local, name, domain, m.Password)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "domain.yaml"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	if policy == "" {
		return nil
	}
	rp := "apiVersion: mail.kubemail.io/v1alpha1\nkind: RelayPolicy\nmetadata: {name: default}\nspec: " + policy + "\n"
	return os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(rp), 0o644)
}
