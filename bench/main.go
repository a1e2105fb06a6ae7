// Command bench loads kubemail's MX with Postfix's smtp-source and compares it with a throwaway
// Postfix delivering into Maildir under the same load on the same machine.
//
// For each session count (-sessions, default 1,10,50) it runs, each time from empty directories:
//
//   - kubemail: `kubemail server` on a loopback port with config/samples and a fresh data dir;
//     smtp-source sends -messages messages of -size bytes to alice@example.test.
//   - postfix: a Postfix master run as root from its own config, queue and data directories under
//     a temp dir (the host's /etc/postfix is not touched), listening on another loopback port,
//     delivering through virtual(8) into Maildir (virtual_mailbox_maps); stopped afterwards.
//
// It prints, per run: messages/s accepted (smtp-source's wall time), messages/s until the last
// message is a file in the Maildir's new/ (delivered), memory under load (kubemail: the largest
// VmRSS of its one process; Postfix: the largest sum of PSS over its processes; both sampled
// every 200 ms while smtp-source runs), kubemail's lifetime peak RSS (VmHWM, which includes
// start-up work such as hashing the passwords of the manifests), CPU time per message (Postfix:
// all its daemons, collected as they are reaped), and the ratio of kubemail to Postfix.
//
// Durability is alike (checked with strace): both fsync a message before they answer 250,
// kubemail in the Maildir (file, then the new/ directory), Postfix in its queue file (cleanup(8));
// virtual(8) later fsyncs the Maildir file before moving it into new/, but not the directory.
//
// Every run is bounded by -timeout; a run that times out is reported as such and the bench goes
// on. BENCH_MESSAGES, BENCH_SESSIONS, BENCH_TIMEOUT, BENCH_SERVERS (kubemail,postfix),
// BENCH_REUSE=1 and BENCH_KUBEMAIL_FLAGS override the defaults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

type options struct {
	kubemail   string
	manifests  string
	smtpSource string
	messages   int
	sessions   []int
	size       int
	timeout    time.Duration
	reuse      bool
	keep       bool
	recipient  string
	servers    []string
	// kubemailFlags are extra `kubemail server` flags, e.g. a higher per-client connection limit.
	kubemailFlags []string
}

// result is one measured run.
type result struct {
	server    string
	sessions  int
	messages  int
	sent      time.Duration // smtp-source wall time
	delivered time.Duration // until the last message is in new/
	count     int           // messages found in new/ at the end
	peakRSS   int64         // bytes: kubemail's VmHWM over its whole life, start-up included
	loadMem   int64         // bytes: kubemail's VmRSS, Postfix's sum of PSS, sampled under load
	cpu       time.Duration // server CPU time (Postfix: all its daemons, from the reaped master)
	err       error
}

func main() {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := checkTools(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("bench: %d messages of %d bytes per run, sessions %v, timeout %v per run, %s\n",
		o.messages, o.size, o.sessions, o.timeout, connMode(o.reuse))
	becomeSubreaper()
	var results []result
	failed := false
	for _, n := range o.sessions {
		for _, server := range o.servers {
			run := runKubemail
			if server == "postfix" {
				run = runPostfix
			}
			r := run(o, n)
			printProgress(r)
			failed = failed || r.err != nil
			results = append(results, r)
		}
	}
	printTable(results)
	if failed {
		os.Exit(1)
	}
}

func connMode(reuse bool) string {
	if reuse {
		return "messages reuse their session's connection (smtp-source -d)"
	}
	return "one connection per message"
}

func parseFlags() (options, error) {
	var o options
	var sessions string
	flag.StringVar(&o.kubemail, "kubemail", "bin/kubemail", "kubemail binary")
	flag.StringVar(&o.manifests, "manifests", "config/samples", "manifests served by kubemail")
	flag.StringVar(&o.smtpSource, "smtp-source", "/usr/sbin/smtp-source", "Postfix's smtp-source")
	flag.IntVar(&o.messages, "messages", envInt("BENCH_MESSAGES", 20000), "messages per run")
	flag.StringVar(&sessions, "sessions", envString("BENCH_SESSIONS", "1,10,50"), "comma-separated concurrent session counts")
	flag.IntVar(&o.size, "size", 10240, "message size in bytes")
	flag.DurationVar(&o.timeout, "timeout", envDuration("BENCH_TIMEOUT", 10*time.Minute), "time limit of one run")
	flag.BoolVar(&o.reuse, "reuse", os.Getenv("BENCH_REUSE") == "1", "send several messages per connection (smtp-source -d)")
	flag.BoolVar(&o.keep, "keep", false, "keep kubemail's temporary directories (RELAY_KEEP=1 keeps Postfix's)")
	flag.StringVar(&o.recipient, "to", "alice@example.test", "recipient; must be a mailbox in -manifests")
	extra := flag.String("kubemail-flags", os.Getenv("BENCH_KUBEMAIL_FLAGS"), "extra `kubemail server` flags, space-separated")
	servers := flag.String("servers", envString("BENCH_SERVERS", "kubemail,postfix"), "comma-separated servers to measure: kubemail, postfix")
	flag.Parse()
	for _, s := range strings.Split(*servers, ",") {
		switch s = strings.TrimSpace(s); s {
		case "kubemail", "postfix":
			o.servers = append(o.servers, s)
		default:
			return o, fmt.Errorf("unknown server %q", s)
		}
	}
	o.kubemailFlags = strings.Fields(*extra)
	for _, f := range strings.Split(sessions, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return o, fmt.Errorf("bad session count %q", f)
		}
		o.sessions = append(o.sessions, n)
	}
	if o.messages < 1 || o.size < 100 {
		return o, errors.New("-messages must be positive and -size at least 100")
	}
	return o, nil
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func checkTools(o options) error {
	tools := []string{o.smtpSource}
	for _, s := range o.servers {
		tools = append(tools, map[string]string{"kubemail": o.kubemail, "postfix": "/usr/sbin/postfix"}[s])
	}
	for _, p := range tools {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (make build; make test-deps installs postfix)", err)
		}
	}
	return nil
}

// smtpSource sends the load to addr and returns its wall time.
func smtpSource(ctx context.Context, o options, sessions int, addr string) (time.Duration, error) {
	args := []string{
		"-s", strconv.Itoa(sessions),
		"-m", strconv.Itoa(o.messages),
		"-l", strconv.Itoa(o.size),
		"-f", "loadgen@remote.test",
		"-t", o.recipient,
		"-M", "loadgen.remote.test",
	}
	if o.reuse {
		args = append(args, "-d")
	}
	cmd := exec.CommandContext(ctx, o.smtpSource, append(args, addr)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		return took, fmt.Errorf("smtp-source did not finish within the run's time limit")
	}
	if err != nil {
		return took, fmt.Errorf("smtp-source: %w: %s", err, lastLines(out.String(), 5))
	}
	if strings.Contains(out.String(), "error") || strings.Contains(out.String(), "fatal") {
		return took, fmt.Errorf("smtp-source reported: %s", lastLines(out.String(), 5))
	}
	return took, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// countFiles counts the entries of a directory (a Maildir's new/); a missing one counts 0.
func countFiles(dir string) int {
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(4096)
		n += len(names)
		if err != nil {
			return n
		}
	}
}

// deliveryContext bounds the wait for the Maildir: the run's limit, or a few seconds when
// smtp-source failed and not every message can arrive.
func deliveryContext(ctx context.Context, sendErr error) (context.Context, context.CancelFunc) {
	if sendErr == nil {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, 5*time.Second)
}

// waitDelivered polls dir until it holds want files or ctx ends; it returns the time from start.
func waitDelivered(ctx context.Context, dir string, want int, start time.Time) (time.Duration, int, error) {
	for {
		n := countFiles(dir)
		if n >= want {
			return time.Since(start), n, nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), n, fmt.Errorf("only %d of %d messages in %s within the run's time limit", n, want, dir)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func printProgress(r result) {
	status := "ok"
	if r.err != nil {
		status = "FAILED: " + r.err.Error()
	}
	fmt.Printf("  %-8s sessions=%-3d sent in %6.2fs, in Maildir after %6.2fs (%d/%d), memory under load %s: %s\n",
		r.server, r.sessions, r.sent.Seconds(), r.delivered.Seconds(), r.count, r.messages, mib(r.loadMem), status)
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

func printTable(results []result) {
	fmt.Println()
	fmt.Printf("%-9s %8s %9s %11s %12s %13s %13s %11s\n", "server", "sessions", "messages", "accepted/s", "delivered/s",
		"mem (load)", "peak RSS", "CPU ms/msg")
	byKey := map[string]result{}
	for _, r := range results {
		byKey[fmt.Sprint(r.server, r.sessions)] = r
		cpu := "n/a"
		if r.cpu > 0 {
			cpu = fmt.Sprintf("%.2f", float64(r.cpu.Microseconds())/1000/float64(r.messages))
		}
		note := ""
		if r.err != nil {
			note = "  (failed: see above)"
		}
		fmt.Printf("%-9s %8d %9d %11.0f %12.0f %13s %13s %11s%s\n", r.server, r.sessions, r.count,
			rate(r.count, r.sent), rate(r.count, r.delivered), mib(r.loadMem), mib(r.peakRSS), cpu, note)
	}
	printed := false
	for _, r := range results {
		p, ok := byKey[fmt.Sprint("postfix", r.sessions)]
		if r.server != "kubemail" || !ok || r.err != nil || p.err != nil {
			continue
		}
		if !printed {
			fmt.Printf("\n%-24s %8s %12s %13s\n", "ratio kubemail/postfix", "sessions", "accepted", "delivered")
			printed = true
		}
		fmt.Printf("%-24s %8d %11.2fx %12.2fx\n", "", r.sessions,
			rate(r.count, r.sent)/rate(p.count, p.sent), rate(r.count, r.delivered)/rate(p.count, p.delivered))
	}
}
