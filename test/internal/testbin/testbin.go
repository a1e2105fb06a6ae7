// Package testbin finds the kubemail binary that the black-box tests (test/e2e, test/relay)
// run: $KUBEMAIL_BIN when set (a relative path is taken from the repository root; the Makefile
// sets it to a race-detector build), otherwise a fresh build of ./cmd/kubemail in a temporary
// directory.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// RepoRoot is the repository's top directory.
var RepoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}()

// Kubemail returns the path of the binary under test and a cleanup that removes a temporary
// build (a no-op for $KUBEMAIL_BIN).
func Kubemail() (path string, cleanup func(), err error) {
	cleanup = func() {}
	path = os.Getenv("KUBEMAIL_BIN")
	if path == "" {
		dir, err := os.MkdirTemp("", "kubemail-test-bin-")
		if err != nil {
			return "", cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		path = filepath.Join(dir, "kubemail")
		build := exec.Command("go", "build", "-o", path, "./cmd/kubemail")
		build.Dir = RepoRoot
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			cleanup()
			return "", func() {}, fmt.Errorf("building kubemail: %w", err)
		}
	}
	if !filepath.IsAbs(path) {
		// go test runs in the package directory; a relative path means one from the repository.
		path = filepath.Join(RepoRoot, path)
	}
	if _, err := os.Stat(path); err != nil {
		cleanup()
		return "", func() {}, fmt.Errorf("binary under test: %w", err)
	}
	return path, cleanup, nil
}
