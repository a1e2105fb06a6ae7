//go:build cluster

package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// commandTimeout bounds every command; the waits inside them have their own, shorter ones.
const commandTimeout = 4 * time.Minute

var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

// env is the environment hack/cluster/e2e.sh passes: the cluster's kubeconfig and the tools.
type env struct {
	kubectl, helm string
	start         time.Time
	phases        []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{start: time.Now()}
	if os.Getenv("KUBECONFIG") == "" {
		t.Fatal("KUBECONFIG is not set: run the test through `make e2e` or start hack/cluster/up.sh first")
	}
	e.kubectl = tool(t, "KUBECTL", filepath.Join(repoRoot, "bin", "k8s", "kubectl"))
	e.helm = tool(t, "HELM", filepath.Join(repoRoot, "bin", "helm"))
	t.Cleanup(func() {
		t.Logf("phase times:\n  %s\n  total %v", strings.Join(e.phases, "\n  "), time.Since(e.start).Round(100*time.Millisecond))
	})
	return e
}

func tool(t *testing.T, envVar, def string) string {
	t.Helper()
	p := os.Getenv(envVar)
	if p == "" {
		p = def
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (set %s)", p, err, envVar)
	}
	return p
}

// phase runs one user-visible step and records how long it took. A failed step stops the test:
// the later ones build on it.
func (e *env) phase(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	start := time.Now()
	t.Logf("%s phase %q started", start.UTC().Format("15:04:05"), name)
	ok := t.Run(name, f)
	d := time.Since(start).Round(100 * time.Millisecond)
	e.phases = append(e.phases, fmt.Sprintf("%-40s %8v", name, d))
	t.Logf("%s phase %q took %v", time.Now().UTC().Format("15:04:05"), name, d)
	if !ok {
		t.FailNow()
	}
}

// run runs a command from the repository root and returns its stdout; a failure or a timeout
// fails the test with the command's output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// runErr is run that returns the failure instead.
func runErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = repoRoot
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\nstdout:\n%s\nstderr:\n%s",
			filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func (e *env) k(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, e.kubectl, args...)
}

// jsonpath reads one field of an object.
func (e *env) jsonpath(t *testing.T, path string, args ...string) string {
	t.Helper()
	return strings.TrimSpace(e.k(t, append(args, "-o", "jsonpath="+path)...))
}

// eventually polls f every 200 ms until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitServiceServes waits until the Service routes to the Ready pod as a client sees it: the
// pod's IP is a ready endpoint of the Service, and a connection to the ClusterIP gets the IMAP
// greeting. kube-proxy programs the new endpoint a moment after the pod turns Ready; until then
// the ClusterIP refuses connections (no endpoints) — the race a user would hit right after a
// rollout, so the test waits it out instead of sending into it.
func (e *env) waitServiceServes(t *testing.T, service, clusterIP, pod string) {
	t.Helper()
	podIP := e.jsonpath(t, "{.status.podIP}", "get", "pod", pod)
	eventually(t, "pod "+podIP+" a ready endpoint of Service "+service, time.Minute, func() error {
		ips, err := runErr(e.kubectl, "get", "endpointslices", "-l", "kubernetes.io/service-name="+service,
			"-o", "jsonpath={.items[*].endpoints[?(@.conditions.ready==true)].addresses[*]}")
		if err != nil {
			return err
		}
		if !slices.Contains(strings.Fields(ips), podIP) {
			return fmt.Errorf("ready endpoints %q", ips)
		}
		return nil
	})
	eventually(t, "an IMAP greeting through "+clusterIP+":143", 30*time.Second, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(clusterIP, "143"), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "* OK") {
			return fmt.Errorf("greeting %q", line)
		}
		return nil
	})
}

// inbox is what imap_read.py dump prints.
type inbox struct {
	UIDValidity uint32 `json:"uidvalidity"`
	Messages    []struct {
		UID     uint32 `json:"uid"`
		Subject string `json:"subject"`
		SHA256  string `json:"sha256"`
	} `json:"messages"`
}

// bySubject returns the UID and digest of the message with the subject, ok false if there is none.
func (b inbox) bySubject(subject string) (uid uint32, sha string, ok bool) {
	for _, m := range b.Messages {
		if m.Subject == subject {
			return m.UID, m.SHA256, true
		}
	}
	return 0, "", false
}

func decode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), v); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
}
