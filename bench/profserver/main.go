// Command profserver is `kubemail server` with Go's profiler exposed, for finding where the time
// of a benchmark goes. It takes "server" and the server flags the benchmarks pass (bench/ and
// test/relay/harness), runs the same server.Run, and serves net/http/pprof on --pprof-addr
// (default 127.0.0.1:6060, or $KUBEMAIL_PPROF_ADDR) with the block and mutex profiles turned on.
//
//	go build -o bin/kubemail-prof ./bench/profserver
//	go run ./bench -kubemail bin/kubemail-prof -sessions 10 -servers kubemail &
//	go tool pprof -seconds 10 http://127.0.0.1:6060/debug/pprof/profile
//
// Other subcommands (`queue retry`, which bench/outbound runs) are handed to the kubemail binary
// in the same directory. It is a measuring tool only: the profiler's own cost (block profiling at every event) makes
// its figures slower than bin/kubemail's.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // the profiler's handlers on http.DefaultServeMux
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/kubemail/kubemail/mailserver/server"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: profserver server [kubemail server flags] [--pprof-addr ADDR]")
		os.Exit(2)
	}
	if os.Args[1] != "server" {
		// `queue` and the rest: the kubemail binary next to this one does them.
		bin := filepath.Join(filepath.Dir(os.Args[0]), "kubemail")
		err := syscall.Exec(bin, append([]string{bin}, os.Args[1:]...), os.Environ())
		fmt.Fprintln(os.Stderr, "profserver:", err)
		os.Exit(2)
	}
	fs := flag.NewFlagSet("profserver", flag.ExitOnError)
	var o server.Options
	fs.StringVar(&o.Manifests, "manifests", "config/samples", "")
	fs.StringVar(&o.DataDir, "data-dir", "data", "")
	fs.StringVar(&o.Hostname, "hostname", "", "")
	fs.StringVar(&o.SMTPAddr, "smtp-addr", "127.0.0.1:2525", "")
	fs.StringVar(&o.SubmissionAddr, "submission-addr", "127.0.0.1:2587", "")
	fs.StringVar(&o.SubmissionsAddr, "submissions-addr", "127.0.0.1:2465", "")
	fs.StringVar(&o.IMAPAddr, "imap-addr", "127.0.0.1:2143", "")
	fs.StringVar(&o.IMAPSAddr, "imaps-addr", "127.0.0.1:2993", "")
	fs.StringVar(&o.HealthAddr, "health-addr", "", "")
	fs.StringVar(&o.DNSResolver, "dns-resolver", "", "")
	fs.StringVar(&o.DKIMKeyType, "dkim-key-type", "rsa", "")
	fs.IntVar(&o.MaxConns, "max-conns", 2000, "")
	fs.IntVar(&o.MaxConnsPerIP, "max-conns-per-ip", 50, "")
	addr := os.Getenv("KUBEMAIL_PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	fs.StringVar(&addr, "pprof-addr", addr, "")
	fs.Parse(os.Args[2:])

	runtime.SetBlockProfileRate(1)
	runtime.SetMutexProfileFraction(1)
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintln(os.Stderr, "profserver:", err)
		}
	}()
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "profserver:", err)
		os.Exit(1)
	}
}
