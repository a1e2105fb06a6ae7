// Package dnscheck tests the operator's DNS check (condition DNSPublished) against a real
// kube-apiserver and etcd (envtest) and a DNS server on loopback (internal/dnstest):
// a MailDomain names the records it misses, then turns DNSPublished=True once the test's DNS
// server publishes them, while Ready is untouched and a steady state writes nothing. It runs
// its own API server and manager because the check's interval and name server are the
// manager's (the shared suite in test/envtest runs with the check off). Build tag `envtest`;
// `make test-envtest` runs it.
package dnscheck
