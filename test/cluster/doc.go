// Package cluster is the end-to-end test on a real one-node Kubernetes (issue 5): what a user sees
// when they install the chart, apply the samples and use the mail system from outside the
// cluster. The test files carry the `cluster` build tag; `make e2e` (hack/cluster.mk)
// builds the binaries and images, starts the cluster with hack/cluster/up.sh, runs them with
// KUBECONFIG, KUBECTL and HELM set, and tears the cluster down (hack/cluster/README.md).
//
// The test drives the cluster only as a user would: helm, kubectl, swaks for SMTP and Python's
// imaplib for IMAP, all from the host, to the mail domain's Service (kube-proxy routes its
// ClusterIP). Waits are kubectl's own (`kubectl wait`, `rollout status`) or polls with a
// deadline; each phase prints its duration.
package cluster
