// Package envtest tests the operator against a real kube-apiserver and etcd (controller-runtime
// envtest) built by `make envtest-assets` into bin/k8s. The tests carry the `envtest` build tag,
// so `go test ./...` skips them; `make test-envtest` runs them.
package envtest
