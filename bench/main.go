// Command bench loads kubemail's MX with Postfix's smtp-source and compares it with a throwaway
// Postfix delivering into Maildir under the same load on the same machine.
//
// For each session count (-sessions, default 1,10,50) it runs, each time from empty directories:
//
//   - kubemail: `kubemail server` on a loopback port with config/samples and a fresh data dir;
//     smtp-source sends -messages messages of -size bytes to alice@example.test. kubemail checks
//     SPF and DMARC of every message against a loopback DNS server (dns.go) through its DNS
//     cache, adds Authentication-Results, and delivers into the Maildir.
//   - postfix: a Postfix master run as root from its own config, queue and data directories under
//     a temp dir (the host's /etc/postfix is not touched), listening on another loopback port,
//     delivering through virtual(8) into Maildir (virtual_mailbox_maps); stopped afterwards. It
//     checks neither SPF nor DMARC (a stock Postfix does not).
//
// Each pair is run -rounds times (3), the two servers taking turns which goes first. The runs'
// directories are made in one directory placed away from the machine's other file churn
// (package benchdir) and all removed at the end only: on ext4 without a journal (as here)
// allocating inodes right after many were deleted nearby is much slower, so a run would
// otherwise pay for the previous run's clean-up or for other programs' temporary files.
//
// It prints, per run: messages/s accepted (smtp-source's wall time), messages/s until the last
// message is a file in the Maildir's new/ (delivered), memory under load (kubemail: the largest
// VmRSS of its one process; Postfix: the largest sum of PSS over its processes; both sampled
// every 200 ms while smtp-source runs), kubemail's lifetime peak RSS (VmHWM, which includes
// start-up work such as hashing the passwords of the manifests), CPU time per message (Postfix:
// all its daemons, collected as they are reaped) and the load average before the run; then per
// server and session count the best and the median of the rounds, and the ratios of kubemail to
// Postfix (best to best, median to median).
//
// Durability is alike (checked with strace): both fsync a message before they answer 250,
// kubemail in the Maildir (file, then the new/ directory), Postfix in its queue file (cleanup(8));
// virtual(8) later fsyncs the Maildir file before moving it into new/, but not the directory.
//
// Every run is bounded by -timeout; a run that times out is reported as such and the bench goes
// on. BENCH_MESSAGES, BENCH_SESSIONS, BENCH_ROUNDS, BENCH_TIMEOUT, BENCH_SERVERS
// (kubemail,postfix), BENCH_REUSE=1, BENCH_DNS_NEGATIVE_TTL, BENCH_KUBEMAIL_FLAGS and
// BENCH_KUBEMAIL_ENV override the defaults.
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

	"github.com/kubemail/kubemail/bench/internal/benchdir"
	"github.com/kubemail/kubemail/bench/internal/procstat"
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
	rounds     int
	negTTL     uint32 // of the bench DNS server's NXDOMAIN answers; 0: no SOA, not cacheable
	// kubemailFlags are extra `kubemail server` flags, e.g. a higher per-client connection limit.
	kubemailFlags []string
	// kubemailEnv is more environment for kubemail, e.g. GOMAXPROCS=4.
	kubemailEnv []string
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
	cpu       time.Duration // server CPU time during the run (Postfix: all its daemons)
	busy      float64       // share of the machine's CPU time busy during the run (everything)
	load      string        // the load average before the run
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
	// Every run's directories are made in one (see package benchdir) and removed at the end only
	// (see the doc comment).
	keep := o.keep || os.Getenv("RELAY_KEEP") != ""
	os.Setenv("RELAY_KEEP", "1")
	base, removeBase, err := benchdir.Setup("kubemail-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("bench: %d messages of %d bytes per run, sessions %v, %d rounds, timeout %v per run, %s\n",
		o.messages, o.size, o.sessions, o.rounds, o.timeout, connMode(o.reuse))
	printSides(o)
	becomeSubreaper()
	var results []result
	failed := false
	for _, n := range o.sessions {
		for round := range o.rounds {
			servers := o.servers
			if round%2 == 1 {
				servers = reversed(servers)
			}
			for _, server := range servers {
				run := runKubemail
				if server == "postfix" {
					run = runPostfix
				}
				load := procstat.LoadAverage()
				r := run(o, n)
				r.load = load
				printProgress(r)
				failed = failed || r.err != nil
				results = append(results, r)
			}
		}
	}
	printTable(results)
	if keep {
		fmt.Println("\nkept the runs' directories under", base)
	} else {
		removeBase()
	}
	if failed {
		os.Exit(1)
	}
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// printSides says what each server does per message, so the figures are read for what they are.
func printSides(o options) {
	dns := fmt.Sprintf("loopback DNS server: NXDOMAIN with an SOA, negative TTL %d s, which kubemail's DNS cache keeps", o.negTTL)
	if o.negTTL == 0 {
		dns = "loopback DNS server: NXDOMAIN without SOA, which no cache may keep: 2 lookups per message"
	}
	fmt.Printf("  kubemail: Received:, SPF and DMARC checks (%s), Authentication-Results:,\n"+
		"            Maildir file fsync + new/ fsync (group commit) before 250; one process\n", dns)
	fmt.Printf("  postfix:  smtpd -> cleanup (queue file fsync before 250) -> qmgr -> virtual(8) (Maildir file\n" +
		"            fsync, no directory fsync); no SPF/DMARC checks; CPU summed over all its daemons\n")
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
	env := flag.String("kubemail-env", os.Getenv("BENCH_KUBEMAIL_ENV"), "more environment for kubemail, space-separated NAME=VALUE (e.g. GOMAXPROCS=4)")
	servers := flag.String("servers", envString("BENCH_SERVERS", "kubemail,postfix"), "comma-separated servers to measure: kubemail, postfix")
	flag.IntVar(&o.rounds, "rounds", envInt("BENCH_ROUNDS", 3), "runs of each server and session count")
	negTTL := flag.Int("dns-negative-ttl", envInt("BENCH_DNS_NEGATIVE_TTL", 300), "negative TTL (s) of the bench DNS server's answers; 0 sends no SOA, so nothing may be cached")
	flag.Parse()
	if *negTTL < 0 || o.rounds < 1 {
		return o, errors.New("-dns-negative-ttl must be 0 or more and -rounds at least 1")
	}
	o.negTTL = uint32(*negTTL)
	for _, s := range strings.Split(*servers, ",") {
		switch s = strings.TrimSpace(s); s {
		case "kubemail", "postfix":
			o.servers = append(o.servers, s)
		default:
			return o, fmt.Errorf("unknown server %q", s)
		}
	}
	o.kubemailFlags = strings.Fields(*extra)
	o.kubemailEnv = strings.Fields(*env)
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
