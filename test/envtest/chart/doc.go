// Package chart tests the Helm chart charts/kubemail against a real kube-apiserver (envtest):
// the helm CLI installs it, the operator runs as the chart's ServiceAccount with the chart's
// RBAC, and config/samples becomes a mail server. Build tag `envtest`; `make test-chart` runs it.
package chart
