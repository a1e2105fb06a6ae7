// Command outbound measures kubemail's outbound throughput, from its queue to Postfix's
// smtp-sink, side by side with a throwaway Postfix relaying the same load to the same sink.
//
// Everything runs on loopback, on addresses of a random 127.x.y.0/24 (test/relay/harness):
//
//   - a DNS server (miekg/dns) on .53 makes .9 the MX of sink.test;
//   - smtp-sink (`smtp-sink -u nobody -c -M N IP:25 1000`) on .9 accepts and discards every
//     message, and exits once it has received N, the load: the end of the measure (its running
//     count is buffered in the pipe, so it is only read at the exit, to check it is N);
//   - kubemail: `kubemail server` on .2 (port 25 and the rest) with --dns-resolver, a MailDomain
//     a.test and a RelayPolicy trustedNetworks [127.0.0.0/8], so that a loopback client relays
//     through its MX without AUTH; each message is fsynced into the queue before the 250, then
//     delivered by MX lookup of sink.test; it is DKIM-signed with a.test's RSA-2048 key as it is
//     queued, before the 250 (the From: is app@a.test, one of its domains: it signs as it must,
//     issue 3), and the signature is sent in front of the message;
//   - postfix: a Postfix master run as root from a temp config_directory on .10:25, with
//     relayhost [.9]:25 (the sink) and Postfix's default concurrency (20 per destination); each
//     message is fsynced by cleanup(8) before the 250. It signs nothing (no milter);
//   - postfix-opendkim: the same Postfix with Debian's opendkim as its milter, signing a.test's
//     mail as kubemail does (RSA-2048, relaxed/relaxed, the same header fields, From
//     oversigned): the same work as kubemail (left out, with a note, when opendkim is not
//     installed). Both sign as the message arrives, so the drain measure has no signing in it
//     on either side;
//   - kubemail-nodkim, for comparison only: the same kubemail with the From: app@relay.test,
//     not one of its domains, so nothing is signed. It shows what the RSA signature costs.
//
// The goal is judged on kubemail against postfix.
//
// For each server the same load is injected over SMTP: -messages messages (default 5000) of
// -size bytes (10 KiB) to bob@sink.test, over -sessions concurrent sessions (20) of go-smtp's
// client, several messages per connection, without TLS. The clock starts at the first
// connection and stops when smtp-sink exits having received every message; the submission time
// alone is printed too.
//
// Then each server measures its queue alone (the drain): with no sink listening the same load
// is injected again and every message tried once (kubemail: its "Attempted delivery" log lines;
// Postfix: status=deferred in its log), then a fresh smtp-sink is started and the queue retried
// at once (`kubemail queue retry --all` through the admin socket, in memory; `postqueue -f`),
// and the clock runs from the retry until the sink has counted every message.
//
// Per run it prints the rates, the server's CPU time per message in each measure (kubemail's
// process; Postfix's master and every daemon), how busy the machine's CPUs were (everything on
// them: the load generator in this process, smtp-sink, other work), the server's memory
// (kubemail: peak RSS; Postfix: the largest sum of PSS over its processes, sampled every 200
// ms) and the load average before the run.
//
// Each side is bounded by -timeout (5 min). The servers take turns for -rounds rounds (3), each
// from fresh directories and a fresh smtp-sink, and the ratios are of the medians of the
// rates: on a shared machine one run of either can be off by a factor of two. The directories
// are made in one placed away from the machine's other file churn and removed at the end only
// (package benchdir).
//
// Needs root (port 25, Postfix), /usr/sbin/smtp-sink and /usr/sbin/postfix (`make test-deps`).
// BENCH_OUT_MESSAGES, BENCH_OUT_SESSIONS, BENCH_OUT_SIZE, BENCH_OUT_ROUNDS and
// BENCH_OUT_TIMEOUT override the flag defaults; BENCH_OUT_SERVERS (kubemail,postfix,
// postfix-opendkim,kubemail-nodkim) chooses the sides; BENCH_KUBEMAIL_ENV (-kubemail-env) gives
// kubemail more environment, e.g. GOMAXPROCS=4. The kubemail binary is -kubemail (bin/kubemail).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kubemail/kubemail/bench/internal/benchdir"
	"github.com/kubemail/kubemail/bench/internal/procstat"
	"github.com/kubemail/kubemail/test/relay/harness"
)

type options struct {
	kubemail string
	messages int
	sessions int
	size     int
	timeout  time.Duration
	servers  []string
	rounds   int
	env      []string // more environment for kubemail
}

// phase is one measure: the rate, and what the server and the machine spent on it.
type phase struct {
	took time.Duration
	cpu  time.Duration // the server's CPU time
	busy float64       // share of the machine's CPU time busy
}

type result struct {
	server    string
	load      string        // load average before the run
	submitted time.Duration // until the last 250
	delivered phase         // until smtp-sink counted every message
	drained   phase         // the drain run: from the retry command until smtp-sink counted all
	mem       int64         // kubemail: peak RSS; Postfix: the largest sum of PSS sampled
	accepted  int
	err       error
}

const defaultServers = "kubemail,postfix,postfix-opendkim,kubemail-nodkim"

// sides says what each server does per message, printed before the figures.
var sides = map[string]string{
	"kubemail": "queue file fsync + msg/ fsync (group commit) before 250; DKIM-signs (RSA-2048, a.test's key) as it queues, before the 250",
	"postfix":  "cleanup(8) queue file fsync before 250; qmgr; smtp(8) to the relayhost; signs nothing (no milter)",
	"kubemail-nodkim": "as kubemail, but From: app@relay.test is not one of its domains, so it signs nothing " +
		"(for comparison only: the goal is judged on kubemail)",
	"postfix-opendkim": "as postfix, with Debian's opendkim milter signing a.test's mail as kubemail does (RSA-2048, " +
		"relaxed/relaxed, the same fields): the same work as kubemail; CPU includes opendkim's",
}

func main() {
	var o options
	flag.StringVar(&o.kubemail, "kubemail", "bin/kubemail", "kubemail binary")
	flag.IntVar(&o.messages, "messages", envInt("BENCH_OUT_MESSAGES", 5000), "messages per server")
	flag.IntVar(&o.sessions, "sessions", envInt("BENCH_OUT_SESSIONS", 20), "concurrent SMTP sessions injecting the load")
	flag.IntVar(&o.size, "size", envInt("BENCH_OUT_SIZE", 10240), "message size in bytes")
	timeout := 5 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("BENCH_OUT_TIMEOUT")); err == nil {
		timeout = d
	}
	flag.DurationVar(&o.timeout, "timeout", timeout, "bound of each server's run")
	flag.IntVar(&o.rounds, "rounds", envInt("BENCH_OUT_ROUNDS", 3), "rounds, each server once per round, alternating")
	env := flag.String("kubemail-env", os.Getenv("BENCH_KUBEMAIL_ENV"), "more environment for kubemail, space-separated NAME=VALUE (e.g. GOMAXPROCS=4)")
	servers := flag.String("servers", envString("BENCH_OUT_SERVERS", defaultServers), "servers to measure: kubemail, postfix, postfix-opendkim, kubemail-nodkim")
	flag.Parse()
	o.servers = strings.Split(*servers, ",")
	o.env = strings.Fields(*env)
	if _, err := os.Stat(openDKIMBin); err != nil && *servers == defaultServers {
		fmt.Printf("outbound: no %s (Debian package opendkim): the postfix-opendkim side is left out\n", openDKIMBin)
		o.servers = slices.DeleteFunc(o.servers, func(s string) bool { return s == "postfix-opendkim" })
	}
	if err := check(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/outbound:", err)
		os.Exit(1)
	}

	// Every run's directories are made in one (see package benchdir), removed at the end only.
	os.Setenv("RELAY_KEEP", "1")
	_, removeBase, err := benchdir.Setup("kubemail-bench-outbound-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/outbound:", err)
		os.Exit(1)
	}
	dns, err := harness.StartDNS(harness.IP(53) + ":53")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/outbound:", err)
		os.Exit(1)
	}
	defer dns.Stop()
	dns.SetMX("sink.test", "mx.sink.test", harness.IP(9))

	fmt.Printf("outbound: %d messages of %d bytes, %d sessions, into the server, relayed to smtp-sink (loopback %s.0/24), %d rounds\n",
		o.messages, o.size, o.sessions, harness.Net, o.rounds)
	for _, s := range o.servers {
		fmt.Printf("  %-15s %s\n", s+":", sides[s])
	}
	failed := false
	var results []result
	for round := 1; round <= o.rounds; round++ {
		servers := o.servers
		if round%2 == 0 {
			servers = slices.Clone(servers)
			slices.Reverse(servers)
		}
		for _, s := range servers {
			load := procstat.LoadAverage()
			var r result
			switch s {
			case "kubemail":
				r = runKubemail(o, dns, "app@a.test")
			case "kubemail-nodkim":
				r = runKubemail(o, dns, "app@relay.test")
			case "postfix":
				r = runPostfix(o, false)
			case "postfix-opendkim":
				r = runPostfix(o, true)
			}
			r.server, r.load = s, load
			fmt.Printf("round %d: ", round)
			report(o, r)
			failed = failed || r.err != nil
			results = append(results, r)
		}
	}
	summarize(o, results)
	removeBase()
	if failed {
		os.Exit(1)
	}
}

func check(o options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it binds port 25 and runs Postfix")
	}
	need := []string{"/usr/sbin/smtp-sink", "/usr/sbin/postfix", o.kubemail}
	if slices.Contains(o.servers, "postfix-opendkim") {
		need = append(need, openDKIMBin)
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (`make build test-deps`; postfix-opendkim needs the Debian package opendkim)", err)
		}
	}
	if o.messages <= 0 || o.sessions <= 0 || o.rounds <= 0 {
		return errors.New("-messages, -sessions and -rounds must be positive")
	}
	for _, s := range o.servers {
		if sides[s] == "" {
			return fmt.Errorf("unknown server %q", s)
		}
	}
	return nil
}

// measure injects the load into addr and waits until the sink has counted it all; pids are the
// server's processes (the CPU time of their trees is measured).
func measure(o options, addr, from string, pids []int, sink *harness.Sink, deadline time.Time) result {
	var r result
	load := &harness.Load{Addr: addr, From: from, To: func(int) string { return "bob@sink.test" },
		Tag: "bench", Messages: o.messages, Sessions: o.sessions, Size: o.size}
	meter := procstat.Start(pids...)
	start := time.Now()
	res := load.Run(deadline)
	r.submitted = time.Since(start)
	for _, ok := range res.Accepted {
		if ok {
			r.accepted++
		}
	}
	if r.accepted != o.messages {
		r.err = fmt.Errorf("%d of %d messages accepted; first errors: %v", r.accepted, o.messages, res.Errors)
		return r
	}
	// smtp-sink exits once it has received every message (-M).
	select {
	case <-sink.Exited():
		r.delivered.took = time.Since(start)
	case <-time.After(time.Until(deadline)):
		r.err = fmt.Errorf("smtp-sink did not receive all %d messages within %v", o.messages, o.timeout)
		return r
	}
	meter.Stop()
	r.delivered.cpu, r.delivered.busy = meter.CPU, meter.BusyShare
	if n := sink.Count(); n != o.messages {
		r.err = fmt.Errorf("smtp-sink exited after %d messages, want %d", n, o.messages)
	}
	return r
}

func runKubemail(o options, dns *harness.DNS, from string) (r result) {
	deadline := time.Now().Add(o.timeout)
	sink, err := harness.StartSink(harness.IP(9)+":25", o.messages)
	if err != nil {
		return result{err: err}
	}
	defer sink.Stop()
	dir, err := os.MkdirTemp("", "kubemail-")
	if err != nil {
		return result{err: err}
	}
	if err := harness.WriteDomain(dir+"/manifests", "a.test", []harness.Mailbox{{Local: "alice", Password: "alice-password"}},
		"{trustedNetworks: [127.0.0.0/8]}"); err != nil {
		return result{err: err}
	}
	k := &harness.Kubemail{Bin: o.kubemail, IP: harness.IP(2), Hostname: "mx.a.test", Manifests: dir + "/manifests",
		DataDir: dir + "/data", DNS: dns.Addr, Env: o.env}
	if err := k.Start(); err != nil {
		return result{err: fmt.Errorf("%w\n%s", err, k.Logs())}
	}
	defer func() {
		if err := k.Stop(); err != nil && r.err == nil {
			r.err = fmt.Errorf("stopping kubemail: %w", err)
		}
	}()
	pid := procstat.FindPID(k.DataDir)
	if pid == 0 {
		return result{err: errors.New("cannot find the kubemail process")}
	}
	r = measure(o, k.Addr(harness.SMTPPort), from, []int{pid}, sink, deadline)
	if r.err == nil {
		r.drained, r.err = drain(o, k.Addr(harness.SMTPPort), from, []int{pid}, deadline,
			func() int { return strings.Count(k.Logs(), `msg="Attempted delivery"`) },
			exec.Command(o.kubemail, "queue", "retry", "--all", "--data-dir", k.DataDir))
	}
	r.mem = procstat.HWM(pid)
	if r.err != nil {
		r.err = fmt.Errorf("%w; last log lines:\n%s", r.err, tail(k.Logs(), 20))
	}
	return r
}

// drain measures the queue alone: with no sink listening, the load is injected and every
// message tried once (attempts counts the tries so far); then a sink is started and retry runs
// (`kubemail queue retry --all`, `postqueue -f`); the clock runs from retry until the sink
// has counted every message.
func drain(o options, addr, from string, pids []int, deadline time.Time, attempts func() int, retry *exec.Cmd) (phase, error) {
	base := attempts()
	load := &harness.Load{Addr: addr, From: from, To: func(int) string { return "bob@sink.test" },
		Tag: "drain", Messages: o.messages, Sessions: o.sessions, Size: o.size}
	res := load.Run(deadline)
	if n := load.Accepted.Load(); n != int64(o.messages) {
		return phase{}, fmt.Errorf("drain: %d of %d messages accepted; first errors: %v", n, o.messages, res.Errors)
	}
	for attempts()-base < o.messages {
		if time.Now().After(deadline) {
			return phase{}, fmt.Errorf("drain: %d of %d messages tried once within %v", attempts()-base, o.messages, o.timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sink, err := harness.StartSink(harness.IP(9)+":25", o.messages)
	if err != nil {
		return phase{}, err
	}
	defer sink.Stop()
	meter := procstat.Start(pids...)
	start := time.Now()
	if out, err := retry.CombinedOutput(); err != nil {
		return phase{}, fmt.Errorf("drain: %s: %w: %s", strings.Join(retry.Args, " "), err, out)
	}
	select {
	case <-sink.Exited():
	case <-time.After(time.Until(deadline)):
		return phase{}, fmt.Errorf("drain: smtp-sink did not receive all %d messages within %v", o.messages, o.timeout)
	}
	took := time.Since(start)
	meter.Stop()
	if n := sink.Count(); n != o.messages {
		return phase{}, fmt.Errorf("drain: smtp-sink exited after %d messages, want %d", n, o.messages)
	}
	return phase{took: took, cpu: meter.CPU, busy: meter.BusyShare}, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
