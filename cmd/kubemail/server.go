package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubemail/kubemail/mailserver/server"
)

func runServer(args []string) int {
	fs := flag.NewFlagSet("kubemail server", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: kubemail server [flags]\n\n"+
			"Serves SMTP (MX and submission) and IMAP for the MailDomains and Mailboxes declared in the\n"+
			"YAML files of --manifests, the same files `kubectl apply -f` takes. Changes to them are\n"+
			"picked up without a restart.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var o server.Options
	fs.StringVar(&o.Manifests, "manifests", "config/samples", "directory of MailDomain, Mailbox, MailGroup, RelayPolicy and Secret manifests")
	fs.StringVar(&o.DataDir, "data-dir", "data", "directory for mailboxes (mail/), the outbound queue (queue/), DKIM keys (dkim/), the self-signed certificate (tls/) and the admin socket")
	fs.StringVar(&o.Hostname, "hostname", "", "host name in SMTP greetings and Received: headers (default: the system's)")
	fs.StringVar(&o.SMTPAddr, "smtp-addr", "127.0.0.1:2525", "SMTP MX listen address (mail from other servers); empty turns it off")
	fs.StringVar(&o.SubmissionAddr, "submission-addr", "127.0.0.1:2587", "SMTP submission listen address (STARTTLS, AUTH); empty turns it off")
	fs.StringVar(&o.SubmissionsAddr, "submissions-addr", "127.0.0.1:2465", "SMTP submission listen address with implicit TLS; empty turns it off")
	fs.StringVar(&o.IMAPAddr, "imap-addr", "127.0.0.1:2143", "IMAP listen address (STARTTLS); empty turns it off")
	fs.StringVar(&o.IMAPSAddr, "imaps-addr", "127.0.0.1:2993", "IMAP listen address with implicit TLS; empty turns it off")
	fs.StringVar(&o.HealthAddr, "health-addr", "", "HTTP listen address for /healthz, /readyz and /metrics (Prometheus); empty turns it off")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "PEM certificate chain file (default: a self-signed certificate kept in the data dir)")
	fs.StringVar(&o.TLSKey, "tls-key", "", "PEM private key file for --tls-cert")
	fs.IntVar(&o.MaxConns, "max-conns", 2000, "open connections each listener takes; past it clients are told to retry later")
	fs.IntVar(&o.MaxConnsPerIP, "max-conns-per-ip", 50, "open connections each listener takes from one client address (loopback clients are exempt)")
	fs.StringVar(&o.DKIMKeysDir, "dkim-keys-dir", "", "directory of the DKIM private keys, <domain>.key, made when missing (default: DATA/dkim)")
	fs.StringVar(&o.DKIMSelector, "dkim-selector", "kubemail", "DKIM selector: keys are published at <selector>._domainkey.<domain>")
	fs.StringVar(&o.DKIMKeyType, "dkim-key-type", "rsa", `type of DKIM keys made: "rsa" (2048 bits, verified everywhere) or "ed25519"`)
	fs.StringVar(&o.DNSResolver, "dns-resolver", "", "HOST:PORT of the DNS server for MX, A, AAAA (outbound routing) and TXT (SPF, DKIM, DMARC) lookups (default: the system resolver)")
	logFormat := fs.String("log-format", "text", `log format: "text" or "json"`)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kubemail server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if *logFormat == "json" {
		handler = slog.NewJSONHandler(os.Stderr, nil)
	} else if *logFormat != "text" {
		fmt.Fprintf(os.Stderr, "kubemail server: --log-format must be text or json, not %q\n", *logFormat)
		return 2
	}
	o.Logger = slog.New(handler)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, o); err != nil {
		o.Logger.Error("Stopped", "err", err)
		fmt.Fprintf(os.Stderr, "kubemail server: %v\n", err)
		return 1
	}
	return 0
}
