package main

import (
	"fmt"
	"slices"

	"github.com/kubemail/kubemail/bench/internal/procstat"
)

func msPerMsg(o options, p phase) float64 {
	return float64(p.cpu.Microseconds()) / 1000 / float64(o.messages)
}

func report(o options, r result) {
	if r.err != nil {
		fmt.Printf("%-15s load %-14s FAILED: %v\n", r.server, r.load, r.err)
		return
	}
	n := float64(o.messages)
	fmt.Printf("%-15s load %-14s submitted %6.1f msg/s; at the sink %6.1f msg/s, %.2f ms CPU/msg, machine %3.0f%% busy; "+
		"drain %6.1f msg/s, %.2f ms CPU/msg, machine %3.0f%% busy; memory %s\n",
		r.server, r.load, n/r.submitted.Seconds(), n/r.delivered.took.Seconds(), msPerMsg(o, r.delivered), 100*r.delivered.busy,
		n/r.drained.took.Seconds(), msPerMsg(o, r.drained), 100*r.drained.busy, mib(r.mem))
}

func mib(b int64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func rounded(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x + 0.5)
	}
	return out
}

// summarize prints, per server, the median and best of the rounds, and the ratios of the
// medians against Postfix.
func summarize(o options, results []result) {
	type series struct{ rate, cpu, drain, drainCPU []float64 }
	by := map[string]*series{}
	for _, r := range results {
		if r.err != nil {
			continue
		}
		s := by[r.server]
		if s == nil {
			s = &series{}
			by[r.server] = s
		}
		n := float64(o.messages)
		s.rate = append(s.rate, n/r.delivered.took.Seconds())
		s.cpu = append(s.cpu, msPerMsg(o, r.delivered))
		s.drain = append(s.drain, n/r.drained.took.Seconds())
		s.drainCPU = append(s.drainCPU, msPerMsg(o, r.drained))
	}
	fmt.Println()
	for _, name := range o.servers {
		s := by[name]
		if s == nil {
			continue
		}
		fmt.Printf("%-15s submission to sink: median %6.1f msg/s, best %6.1f %v, %.2f ms CPU/msg; queue drain: median %6.1f msg/s, best %6.1f %v, %.2f ms CPU/msg\n",
			name, procstat.Median(s.rate), slices.Max(s.rate), rounded(s.rate), procstat.Median(s.cpu),
			procstat.Median(s.drain), slices.Max(s.drain), rounded(s.drain), procstat.Median(s.drainCPU))
	}
	for _, pair := range []struct{ k, p, note string }{
		{"kubemail", "postfix", "(the issue's goal: 1.5x; kubemail signs, Postfix does not)"},
		{"kubemail", "postfix-opendkim", "(the same work: both sign with RSA-2048)"},
		{"kubemail-nodkim", "postfix", "(comparison only: neither signs)"},
	} {
		s, p := by[pair.k], by[pair.p]
		if s == nil || p == nil {
			continue
		}
		fmt.Printf("ratio %s/%s: medians %.2fx submission to sink, %.2fx queue drain; best %.2fx, %.2fx %s\n", pair.k, pair.p,
			procstat.Median(s.rate)/procstat.Median(p.rate), procstat.Median(s.drain)/procstat.Median(p.drain),
			slices.Max(s.rate)/slices.Max(p.rate), slices.Max(s.drain)/slices.Max(p.drain), pair.note)
	}
}
