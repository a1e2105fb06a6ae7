package harness

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Sink is Postfix's smtp-sink on addr: it accepts every message and throws it away. Its
// running count ("mesg=N", -c) is buffered in a pipe, so the reliable end of a load is Exited:
// with maxMessages > 0 smtp-sink exits after receiving that many messages (-M).
type Sink struct {
	Addr string

	mu     sync.Mutex
	out    bytes.Buffer
	cmd    *exec.Cmd
	exited chan struct{}
}

// Write collects smtp-sink's output.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

// StartSink runs `smtp-sink -u nobody -c [-M maxMessages] addr 1000` and waits until addr
// accepts connections.
func StartSink(addr string, maxMessages int) (*Sink, error) {
	s := &Sink{Addr: addr, exited: make(chan struct{})}
	args := []string{"-u", "nobody", "-c"}
	if maxMessages > 0 {
		args = append(args, "-M", strconv.Itoa(maxMessages))
	}
	s.cmd = exec.Command("/usr/sbin/smtp-sink", append(args, addr, "1000")...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting smtp-sink: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("smtp-sink exited: %s", s.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("smtp-sink did not listen on %s within 10s: %s", addr, s.output())
		}
	}
}

func (s *Sink) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

var sinkCountRE = regexp.MustCompile(`mesg=(\d+)`)

// Exited is closed when smtp-sink has exited.
func (s *Sink) Exited() <-chan struct{} { return s.exited }

// Count is how many messages smtp-sink has printed it received; exact once it has exited (the
// probe connection of StartSink counts as a session, not as a message).
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.out.Bytes()
	// The counter is rewritten after '\r'; read the last one.
	i := bytes.LastIndex(b, []byte("mesg="))
	if i < 0 {
		return 0
	}
	m := sinkCountRE.FindSubmatch(b[i:])
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// Stop kills smtp-sink and waits for it.
func (s *Sink) Stop() {
	s.cmd.Process.Kill()
	<-s.exited
}
