package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/kubemail/kubemail/bench/internal/procstat"
)

func printProgress(r result) {
	status := "ok"
	if r.err != nil {
		status = "FAILED: " + r.err.Error()
	}
	fmt.Printf("  %-8s sessions=%-3d load %-14s sent in %6.2fs, in Maildir after %6.2fs (%d/%d), %s ms CPU/msg, machine %3.0f%% busy, memory under load %s: %s\n",
		r.server, r.sessions, r.load, r.sent.Seconds(), r.delivered.Seconds(), r.count, r.messages, cpuPerMsg(r), 100*r.busy, mib(r.loadMem), status)
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func mib(b int64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func cpuPerMsg(r result) string {
	if r.cpu <= 0 || r.messages == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(r.cpu.Microseconds())/1000/float64(r.messages))
}

// summary is the rounds of one server at one session count.
type summary struct {
	accepted, delivered, cpu []float64 // per successful round
	loadMem, peakRSS         int64     // the largest of the rounds
}

func (s *summary) add(r result) {
	s.accepted = append(s.accepted, rate(r.count, r.sent))
	s.delivered = append(s.delivered, rate(r.count, r.delivered))
	if r.cpu > 0 {
		s.cpu = append(s.cpu, float64(r.cpu.Microseconds())/1000/float64(r.messages))
	}
	s.loadMem, s.peakRSS = max(s.loadMem, r.loadMem), max(s.peakRSS, r.peakRSS)
}

func best(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Max(v)
}

func printTable(results []result) {
	fmt.Println()
	fmt.Printf("%-9s %8s %6s %11s %12s %11s %13s %13s  %s\n", "server", "sessions", "rounds", "accepted/s", "delivered/s",
		"CPU ms/msg", "mem (load)", "peak RSS", "(best / median of the rounds; CPU: median)")
	sums := map[string]*summary{}
	var keys []string
	failed := map[string]int{}
	for _, r := range results {
		k := fmt.Sprint(r.server, " ", r.sessions)
		if sums[k] == nil {
			sums[k] = &summary{}
			keys = append(keys, k)
		}
		if r.err != nil {
			failed[k]++
			continue
		}
		sums[k].add(r)
	}
	for _, k := range keys {
		var server string
		var sessions int
		fmt.Sscan(k, &server, &sessions)
		s := sums[k]
		note := ""
		if failed[k] > 0 {
			note = fmt.Sprintf("  (%d failed: see above)", failed[k])
		}
		cpu := "n/a"
		if len(s.cpu) > 0 {
			cpu = fmt.Sprintf("%.2f", procstat.Median(s.cpu))
		}
		fmt.Printf("%-9s %8d %6d %5.0f/%-5.0f %6.0f/%-5.0f %11s %13s %13s%s\n", server, sessions, len(s.accepted),
			best(s.accepted), procstat.Median(s.accepted), best(s.delivered), procstat.Median(s.delivered), cpu, mib(s.loadMem), mib(s.peakRSS), note)
	}
	printed := false
	for _, k := range keys {
		var server string
		var sessions int
		fmt.Sscan(k, &server, &sessions)
		p := sums[fmt.Sprint("postfix ", sessions)]
		s := sums[k]
		if server != "kubemail" || p == nil || len(p.accepted) == 0 || len(s.accepted) == 0 {
			continue
		}
		if !printed {
			fmt.Printf("\n%-24s %8s %18s %18s\n", "ratio kubemail/postfix", "sessions", "accepted best/med", "delivered best/med")
			printed = true
		}
		fmt.Printf("%-24s %8d %8.2fx /%6.2fx %8.2fx /%6.2fx\n", "", sessions,
			best(s.accepted)/best(p.accepted), procstat.Median(s.accepted)/procstat.Median(p.accepted),
			best(s.delivered)/best(p.delivered), procstat.Median(s.delivered)/procstat.Median(p.delivered))
	}
}
