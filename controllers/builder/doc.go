// Package builder renders the Kubernetes objects that run one MailDomain's mail server: a
// StatefulSet, a headless and a client Service, a ConfigMap with the domain's manifests and a
// Secret with its password hashes. Builders are pure: objects in, objects out, no API calls, so
// golden files (testdata/*.golden.yaml, refreshed with `go test ./controllers/builder -update`)
// show exactly what a change does to the rendered objects.
//
// # The pod's config contract
//
// The mail server pod runs `kubemail server --manifests /etc/kubemail/manifests`, the same
// command that serves a directory of YAML on one machine. The operator writes that directory:
// the ConfigMap holds objects.yaml (the MailDomain, its Mailboxes, its MailGroups and the RelayPolicies that
// apply to it, as the API returned them less status and server-set metadata, plus the
// operator's RelayPolicy kubemail-cluster-routes with a route per other MailDomain in the
// cluster to its client Service; see clusterRoutes for what it leaves out) and the Secret
// holds passwords.yaml, a Secret manifest with one argon2id hash per Mailbox; each Mailbox's
// passwordSecretRef is rewritten to point at it. A projected volume lays both files in one
// directory, the server resolves them with mailserver/config.Resolve exactly as it resolves a
// hand-written directory, and the kubelet's atomic updates of the volume reach the running
// server, which reloads without a restart (the operator annotates the running pods with the
// hash of the two files, so the kubelet makes the update at once: see package controllers). Plain passwords never leave the operator.
package builder
