package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kubemail/kubemail/bench/internal/procstat"
	"github.com/kubemail/kubemail/test/relay/harness"
)

// runPostfix measures Postfix relaying to the sink; with dkim, signing through opendkim, whose
// CPU time is counted with Postfix's.
func runPostfix(o options, dkim bool) (r result) {
	deadline := time.Now().Add(o.timeout)
	sink, err := harness.StartSink(harness.IP(9)+":25", o.messages)
	if err != nil {
		return result{err: err}
	}
	defer sink.Stop()
	pf := &harness.Postfix{Addr: harness.IP(10) + ":25", Relayhost: "[" + harness.IP(9) + "]:25"}
	var milter *openDKIM
	if dkim {
		// opendkim refuses a config or key in a directory others may write to (/tmp).
		dir, err := os.MkdirTemp("/run", "kubemail-bench-opendkim-")
		if err != nil {
			return result{err: err}
		}
		defer os.RemoveAll(dir)
		if milter, err = startOpenDKIM(dir); err != nil {
			return result{err: err}
		}
		defer milter.Stop()
		// A signing failure refuses the message (tempfail): the bench then fails rather than
		// measuring unsigned mail.
		pf.Main = []string{"smtpd_milters = " + milter.Milter, "non_smtpd_milters = $smtpd_milters",
			"milter_default_action = tempfail", "milter_protocol = 6"}
	}
	if err := pf.Start(); err != nil {
		return result{err: err}
	}
	defer func() {
		if err := pf.Stop(); err != nil && r.err == nil {
			r.err = fmt.Errorf("stopping Postfix: %w", err)
		}
	}()
	var mem int64
	stopSampling := procstat.SampleMax(&mem, func() int64 {
		m := procstat.TreePSS(pf.MasterPID())
		if milter != nil {
			m += procstat.TreePSS(milter.PID())
		}
		return m
	})
	pids := []int{pf.MasterPID()}
	if milter != nil {
		pids = append(pids, milter.PID())
	}
	r = measure(o, pf.Addr, "app@a.test", pids, sink, deadline)
	if r.err == nil {
		r.drained, r.err = drain(o, pf.Addr, "app@a.test", pids, deadline,
			func() int { return strings.Count(pf.Log(), "status=deferred") },
			exec.Command("/usr/sbin/postqueue", "-c", pf.Etc, "-f"))
	}
	stopSampling()
	r.mem = mem
	if r.err != nil {
		r.err = fmt.Errorf("%w; last log lines:\n%s", r.err, tail(pf.Log(), 20))
	}
	return r
}
