package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kubemail is one `kubemail server` process on the well-known ports of its own loopback IP.
type Kubemail struct {
	Bin       string
	IP        string // listens on IP:25, :587, :465, :143, :993
	Hostname  string
	Manifests string
	DataDir   string
	DNS       string   // --dns-resolver
	Flags     []string // more flags
	Env       []string // more environment, e.g. SSL_CERT_FILE=ca.pem (Go's TLS roots)

	mu      sync.Mutex
	logs    bytes.Buffer // every run's stderr, appended
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
}

// Ports of the listeners.
const (
	SMTPPort        = "25"
	SubmissionPort  = "587"
	SubmissionsPort = "465"
	IMAPPort        = "143"
	IMAPSPort       = "993"
)

// Addr is IP:port.
func (k *Kubemail) Addr(port string) string { return k.IP + ":" + port }

var servingRE = regexp.MustCompile(`msg="?Serving"?.*\bprotocol="?([a-z]+)`)

// Write collects the server's output.
func (k *Kubemail) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.logs.Write(p)
}

// Logs is everything the server printed over all its runs.
func (k *Kubemail) Logs() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.logs.String()
}

// Start runs the server and waits until its five listeners serve.
func (k *Kubemail) Start() error {
	if k.Running() {
		return errors.New("kubemail: already running")
	}
	args := []string{"server", "--manifests", k.Manifests, "--data-dir", k.DataDir,
		"--hostname", k.Hostname, "--dns-resolver", k.DNS,
		"--smtp-addr", k.Addr(SMTPPort), "--submission-addr", k.Addr(SubmissionPort),
		"--submissions-addr", k.Addr(SubmissionsPort), "--imap-addr", k.Addr(IMAPPort),
		"--imaps-addr", k.Addr(IMAPSPort)}
	args = append(args, k.Flags...)
	k.mu.Lock()
	start := k.logs.Len()
	fmt.Fprintf(&k.logs, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	k.mu.Unlock()
	cmd := exec.Command(k.Bin, args...)
	cmd.Stdout, cmd.Stderr = k, k
	cmd.Env = append(os.Environ(), k.Env...)
	// If this process dies (a test binary's timeout panic skips the cleanups), so does the server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", k.Bin, err)
	}
	exited := make(chan struct{})
	k.cmd, k.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		k.mu.Lock()
		k.exitErr = err
		k.mu.Unlock()
		close(exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		k.mu.Lock()
		out := k.logs.String()[start:]
		k.mu.Unlock()
		serving := map[string]bool{}
		for _, m := range servingRE.FindAllStringSubmatch(out, -1) {
			serving[m[1]] = true
		}
		if len(serving) >= 5 {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("kubemail %s exited before serving: %v", k.Hostname, k.exitErr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			k.Kill()
			return fmt.Errorf("kubemail %s did not serve within 30s", k.Hostname)
		}
	}
}

// Running says whether the process is alive.
func (k *Kubemail) Running() bool {
	if k.cmd == nil {
		return false
	}
	select {
	case <-k.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after 20 s); it returns the exit error.
func (k *Kubemail) Stop() error {
	if !k.Running() {
		return nil
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.exitErr
	case <-time.After(20 * time.Second):
		k.Kill()
		return errors.New("kubemail did not stop within 20s of SIGTERM; killed")
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (k *Kubemail) Kill() {
	if !k.Running() {
		return
	}
	k.cmd.Process.Kill()
	<-k.exited
}

// QueueIDs lists the IDs of the messages in the outbound queue (the message files in
// <data>/queue/msg; a message has a record in meta/ only once an attempt has changed it).
func (k *Kubemail) QueueIDs() []string {
	names, _ := filepath.Glob(filepath.Join(k.DataDir, "queue", "msg", "*"))
	ids := make([]string, 0, len(names))
	for _, n := range names {
		ids = append(ids, filepath.Base(n))
	}
	return ids
}

// QueueRecord reads the metadata record of a queued message (written after its first attempt).
func (k *Kubemail) QueueRecord(id string) ([]byte, error) {
	return os.ReadFile(filepath.Join(k.DataDir, "queue", "meta", id+".json"))
}

// Maildir is the INBOX directory of a mailbox of this server.
func (k *Kubemail) Maildir(addr string) string {
	local, domain, _ := strings.Cut(addr, "@")
	return filepath.Join(k.DataDir, "mail", domain, local)
}
