package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/kubemail/kubemail/bench/internal/procstat"
)

var servingSMTP = regexp.MustCompile(`msg="?Serving"?.*\bprotocol="?smtp"?\s.*\baddr="?([0-9.:]+)`)

// runKubemail measures kubemail's MX with a fresh data dir.
func runKubemail(o options, sessions int) result {
	r := result{server: "kubemail", sessions: sessions, messages: o.messages}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	tmp, err := os.MkdirTemp("", "kubemail-bench-")
	if err != nil {
		r.err = err
		return r
	}
	dataDir := filepath.Join(tmp, "data")
	logFile, err := os.Create(filepath.Join(tmp, "server.log"))
	if err != nil {
		r.err = err
		return r
	}
	defer logFile.Close()

	dnsAddr, stopDNS, err := startDNS(o.negTTL)
	if err != nil {
		r.err = err
		return r
	}
	defer stopDNS()
	args := []string{"server", "--dns-resolver", dnsAddr,
		"--manifests", o.manifests, "--data-dir", dataDir, "--hostname", "mx.example.test",
		"--smtp-addr", "127.0.0.1:0", "--submission-addr", "", "--submissions-addr", "",
		"--imap-addr", "", "--imaps-addr", ""}
	args = append(args, o.kubemailFlags...)
	cmd := exec.Command(o.kubemail, args...)
	cmd.Env = append(os.Environ(), o.kubemailEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		r.err = err
		return r
	}
	if err := cmd.Start(); err != nil {
		r.err = fmt.Errorf("starting kubemail: %w", err)
		return r
	}
	exited := make(chan error, 1)
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if m := servingSMTP.FindStringSubmatch(line); m != nil && !sent {
				addrc <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, stderr)
		exited <- cmd.Wait()
	}()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()

	var addr string
	select {
	case addr = <-addrc:
	case err := <-exited:
		exited <- err
		r.err = fmt.Errorf("kubemail exited before serving (%v); log in %s", err, logFile.Name())
		return r
	case <-time.After(30 * time.Second):
		r.err = fmt.Errorf("kubemail did not log Serving protocol=smtp within 30s; log in %s", logFile.Name())
		return r
	}

	local, domain, _ := strings.Cut(o.recipient, "@")
	newDir := filepath.Join(dataDir, "mail", domain, local, "new")
	pid := cmd.Process.Pid
	rssBefore := procstat.RSS(pid)
	stopSampling := procstat.SampleMax(&r.loadMem, func() int64 { return procstat.RSS(pid) })
	meter := procstat.Start(pid)
	start := time.Now()
	r.sent, r.err = smtpSource(ctx, o, sessions, addr)
	atExit := countFiles(newDir)
	if r.err == nil && atExit < o.messages {
		// Each 250 is sent after the message is in new/, so all of them must be there now.
		fmt.Printf("  kubemail: only %d of %d messages were in new/ when smtp-source finished\n", atExit, o.messages)
	}
	var derr error
	waitCtx, cancelWait := deliveryContext(ctx, r.err)
	r.delivered, r.count, derr = waitDelivered(waitCtx, newDir, o.messages, start)
	cancelWait()
	if r.err == nil {
		r.err = derr
	}
	stopSampling()
	meter.Stop()
	r.cpu, r.busy, r.peakRSS = meter.CPU, meter.BusyShare, procstat.HWM(pid)
	fmt.Printf("  kubemail: RSS %s before the load, %s after it\n", mib(rssBefore), mib(procstat.RSS(pid)))
	return r
}
