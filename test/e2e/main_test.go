// Package e2e tests the kubemail binary from the outside, the way a mail administrator and their
// users meet it: the real `kubemail server` process on loopback listeners, fed by the YAML
// manifests of config/samples, with real clients (Debian's swaks and isync/mbsync, Python's
// smtplib and imaplib) and real TLS.
//
// The binary under test is the one test/internal/testbin finds: $KUBEMAIL_BIN (`make test-e2e`
// sets it to a race-detector build in bin/) or a fresh build in a temporary directory. A client
// that is not installed skips its tests on a developer machine and fails them under CI=true (run
// `make test-deps`).
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kubemail/kubemail/test/internal/testbin"
)

// kubemailBin is the path of the binary under test, set by TestMain.
var kubemailBin string

// repoRoot is the repository's top directory (config/samples lives there).
var repoRoot string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	repoRoot = testbin.RepoRoot
	bin, cleanup, err := testbin.Kubemail()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer cleanup()
	kubemailBin = bin
	return m.Run()
}

// requireTool returns the path of an external client program. It skips the test when the
// program is missing on a developer machine and fails it under CI, where nothing may be skipped.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; `make test-deps` installs it", name)
	}
	t.Skipf("%s is not installed; run `make test-deps`", name)
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
