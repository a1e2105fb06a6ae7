//go:build envtest

package envtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// This file plays the kubelet for the pod contract test: it lays out a pod's volumes as files
// and runs its container's command and args as a process on the loopback interface.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// kubemailBinary is $KUBEMAIL_BIN (make test-envtest passes bin/kubemail), or a kubemail built
// once for this test run.
func kubemailBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("KUBEMAIL_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kubemail-envtest-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "kubemail")
		out, err := exec.Command("go", "build", "-o", builtBin, "../../cmd/kubemail").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/kubemail: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// projectFiles writes files into dir the way the kubelet updates a ConfigMap, Secret or
// projected volume: into a new hidden timestamped directory, then one atomic rename of the
// ..data symlink to it; each visible file is a symlink through ..data.
func projectFiles(dir string, files map[string][]byte) error {
	ts, err := os.MkdirTemp(dir, ".."+time.Now().Format("2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o644); err != nil {
			return err
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				return err
			}
		}
	}
	if old != "" {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// pod is a container of a pod template run as a local process.
type pod struct {
	mounts map[string]string // volume name -> directory standing in for it
	ports  map[string]string // container port name -> 127.0.0.1:port it listens on
	cmd    *exec.Cmd
	log    *syncBuffer

	grace   time.Duration // the pod's termination grace period
	stopped bool
}

// startPod runs container c of spec with its command and args, its volume mounts replaced by
// directories and its container ports by free loopback ports; volumes holds the content of
// each projected/ConfigMap/Secret volume by name.
func startPod(t *testing.T, spec corev1.PodSpec, c corev1.Container, volumes map[string]map[string][]byte) *pod {
	t.Helper()
	return startPodOn(t, spec, c, volumes, nil)
}

// startPodOn is startPod with the directories of some volumes given, by name: a pod that the
// StatefulSet brings back on the same persistent volume.
func startPodOn(t *testing.T, spec corev1.PodSpec, c corev1.Container, volumes map[string]map[string][]byte, dirs map[string]string) *pod {
	t.Helper()
	p := &pod{mounts: map[string]string{}, ports: map[string]string{}, log: &syncBuffer{}}
	root := t.TempDir()
	replace := map[string]string{}
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(root, m.Name)
		if d, ok := dirs[m.Name]; ok {
			dir = d
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p.mounts[m.Name] = dir
		replace[m.MountPath] = dir
		if files, ok := volumes[m.Name]; ok {
			if err := projectFiles(dir, files); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, cp := range c.Ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		p.ports[cp.Name] = addr
		replace[fmt.Sprintf(":%d", cp.ContainerPort)] = addr
	}
	// Flags name mount paths and container ports; point them at the stand-ins.
	var args []string
	for _, a := range append(c.Command[1:], c.Args...) {
		if flag, value, ok := strings.Cut(a, "="); ok {
			for from, to := range replace {
				if value == from || strings.HasPrefix(value, from+"/") {
					a = flag + "=" + to + strings.TrimPrefix(value, from)
					break
				}
			}
		}
		args = append(args, a)
	}
	if c.Command[0] == "" {
		t.Fatal("the container has no command")
	}
	p.cmd = exec.Command(kubemailBinary(t), args...)
	p.cmd.Env = []string{"TMPDIR=" + p.mounts["tmp"], "PATH=/usr/bin:/bin"}
	for _, e := range c.Env {
		p.cmd.Env = append(p.cmd.Env, e.Name+"="+e.Value)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("started %s %s", c.Command[0], strings.Join(args, " "))
	p.grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", p.log.String())
		}
	})
	return p
}

// stop stops the server as the kubelet stops a container: SIGTERM's like, then a kill after the
// termination grace period. Stopping a stopped pod does nothing.
func (p *pod) stop(t *testing.T) {
	t.Helper()
	if p.stopped {
		return
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(p.grace):
		_ = p.cmd.Process.Kill()
		t.Error("the server did not stop within the pod's termination grace period")
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
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
