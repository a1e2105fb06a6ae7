// Module images builds the e2e cluster's container images without Docker or a registry (see
// README.md). Not part of the main module, so its go-containerregistry dependency stays out of
// the main go.mod.
module github.com/kubemail/kubemail/hack/images

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
