package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/kubemail/kubemail/bench/internal/procstat"
	"github.com/kubemail/kubemail/test/relay/harness"
)

// runPostfix measures a throwaway Postfix (harness.Postfix: run as root from its own
// directories, delivering through virtual(8) into Maildirs) under the same load.
func runPostfix(o options, sessions int) (r result) {
	r = result{server: "postfix", sessions: sessions, messages: o.messages}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	addr, err := freeAddr()
	if err != nil {
		r.err = err
		return r
	}
	pf := &harness.Postfix{Addr: addr, Mailboxes: []string{o.recipient}}
	if err := pf.Start(); err != nil {
		r.err = err
		return r
	}
	defer func() {
		if err := pf.Stop(); err != nil && r.err == nil {
			r.err = err
		}
		// The master daemonizes and so, this process being a subreaper, is reaped here.
		reapAll()
	}()

	stopSampling := procstat.SampleMax(&r.loadMem, func() int64 { return procstat.TreePSS(pf.MasterPID()) })
	meter := procstat.Start(pf.MasterPID())
	start := time.Now()
	r.sent, r.err = smtpSource(ctx, o, sessions, pf.Addr)
	var derr error
	waitCtx, cancelWait := deliveryContext(ctx, r.err)
	r.delivered, r.count, derr = waitDelivered(waitCtx, pf.Maildir(o.recipient), o.messages, start)
	cancelWait()
	if r.err == nil {
		r.err = derr
	}
	if r.err != nil {
		r.err = fmt.Errorf("%w (Postfix log: %s)", r.err, filepath.Join(pf.Dir, "maillog"))
	}
	meter.Stop()
	r.cpu, r.busy = meter.CPU, meter.BusyShare
	stopSampling()
	return r
}

// freeAddr is a loopback address with a port nothing listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
