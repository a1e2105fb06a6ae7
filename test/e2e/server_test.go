package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The listeners `kubemail server` opens, by the protocol name its "Serving" log line gives.
var protocols = []string{"smtp", "submission", "submissions", "imap", "imaps"}

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

// server is one running `kubemail server` process.
type server struct {
	t         *testing.T
	cmd       *exec.Cmd
	manifests string
	dataDir   string
	cert      *testCert
	logs      *syncBuffer
	addrs     map[string]string // protocol -> 127.0.0.1:port, from its log
	exited    chan struct{}
	exitErr   error
}

// syncBuffer collects the server's stderr; the test reads it while the process writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	servingLine  = regexp.MustCompile(`(?m)^.*\bmsg="?Serving"?\s.*$`)
	protocolAttr = regexp.MustCompile(`\bprotocol="?([a-z]+)`)
	addrAttr     = regexp.MustCompile(`\baddr="?([0-9a-f.:\[\]]+)`)
)

// startServer runs the binary on fresh loopback ports (port 0; the real ports come from its
// "Serving" log lines) and waits until every listener is serving. The server is stopped when the
// test ends; a test that restarts it calls stop itself.
func startServer(t *testing.T, manifests, dataDir string, cert *testCert) *server {
	t.Helper()
	s := &server{t: t, manifests: manifests, dataDir: dataDir, cert: cert}
	s.start()
	return s
}

func (s *server) start() {
	t := s.t
	t.Helper()
	args := []string{"server",
		"--manifests", s.manifests,
		"--data-dir", s.dataDir,
		"--hostname", "mx.example.test",
		"--smtp-addr", "127.0.0.1:0",
		"--submission-addr", "127.0.0.1:0",
		"--submissions-addr", "127.0.0.1:0",
		"--imap-addr", "127.0.0.1:0",
		"--imaps-addr", "127.0.0.1:0",
		"--tls-cert", s.cert.certFile,
		"--tls-key", s.cert.keyFile,
	}
	s.logs = &syncBuffer{}
	s.addrs = map[string]string{}
	s.exited = make(chan struct{})
	s.exitErr = nil
	s.cmd = exec.Command(kubemailBin, args...)
	s.cmd.Stdout = s.logs
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", kubemailBin, err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		// A race-detector build (make test-e2e) reports data races on stderr as they happen.
		if strings.Contains(s.logs.String(), "WARNING: DATA RACE") {
			t.Errorf("the server reported a data race")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})

	deadline := time.Now().Add(startTimeout)
	for {
		for _, line := range servingLine.FindAllString(s.logs.String(), -1) {
			p, a := protocolAttr.FindStringSubmatch(line), addrAttr.FindStringSubmatch(line)
			if p != nil && a != nil {
				s.addrs[p[1]] = a[1]
			}
		}
		if s.allServing() {
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("kubemail server exited before serving (%v); log:\n%s", s.exitErr, s.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubemail server did not log Serving for all of %v within %v (got %v); log:\n%s",
				protocols, startTimeout, s.addrs, s.logs.String())
		}
	}
}

func (s *server) allServing() bool {
	for _, p := range protocols {
		if s.addrs[p] == "" {
			return false
		}
	}
	return true
}

// hostPort splits the address a protocol is served on.
func (s *server) hostPort(protocol string) (string, string) {
	addr := s.addrs[protocol]
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		s.t.Fatalf("no address for %s: %q", protocol, addr)
	}
	return addr[:i], addr[i+1:]
}

// stop sends SIGTERM and expects a graceful exit with status 0.
func (s *server) stop() {
	t := s.t
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("sending SIGTERM: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		s.cmd.Process.Kill()
		<-s.exited
		t.Fatalf("kubemail server did not stop within %v of SIGTERM; log:\n%s", stopTimeout, s.logs.String())
	}
	if s.exitErr != nil {
		t.Fatalf("kubemail server exited with %v after SIGTERM; log:\n%s", s.exitErr, s.logs.String())
	}
}

// restart stops the server and starts it again on the same data dir and manifests.
func (s *server) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// runServerToExit runs the binary with the given manifests and expects it to exit on its own
// (a start-up error) within the start timeout. It returns the exit code and everything printed.
func runServerToExit(t *testing.T, manifests string) (int, string) {
	t.Helper()
	cmd := exec.Command(kubemailBin, "server",
		"--manifests", manifests,
		"--data-dir", t.TempDir(),
		"--smtp-addr", "127.0.0.1:0",
		"--submission-addr", "127.0.0.1:0",
		"--submissions-addr", "127.0.0.1:0",
		"--imap-addr", "127.0.0.1:0",
		"--imaps-addr", "127.0.0.1:0",
	)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", kubemailBin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), out.String()
		}
		if err != nil {
			t.Fatalf("waiting for kubemail server: %v", err)
		}
		return 0, out.String()
	case <-time.After(startTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("kubemail server kept running with bad manifests; output:\n%s", out.String())
		return 0, ""
	}
}

// copySamples copies config/samples into a fresh directory that a test may add files to.
func copySamples(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(repoRoot, "config", "samples")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatalf("reading samples: %v", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dir, e.Name()))
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
