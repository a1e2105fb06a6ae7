// Command kubemail is the one binary of kubemail: `kubemail server` runs a mail server,
// `kubemail manager` runs the Kubernetes operator that manages mail servers, and `kubemail
// queue` inspects a running server's outbound queue, and `kubemail dns` prints and checks the DNS
// records a server run on its own needs.
package main

import (
	"fmt"
	"os"

	// Mozilla's roots, used only where the system has none (the e2e image, a scratch
	// container): verified TLS (smarthosts, MTA-STS) then still works.
	_ "golang.org/x/crypto/x509roots/fallback"
)

const usage = `kubemail: a complete Internet mail system, run by a Kubernetes operator or on its own.

Usage:
  kubemail server [flags]   serve SMTP and IMAP for the domains in a manifests directory
  kubemail manager [flags]  run the Kubernetes operator that turns MailDomains into mail servers
  kubemail queue list|retry|delete [--data-dir DIR]
                            list, retry or delete the running server's queued outbound mail
  kubemail dns [--check] [flags]
                            print the DNS records to publish for the domains in a manifests
                            directory, or check that they are published
  kubemail version          print the version

Run "kubemail server --help" for the server's flags, "kubemail dns --help" for the DNS records.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		os.Exit(runServer(os.Args[2:]))
	case "manager":
		os.Exit(runManager(os.Args[2:]))
	case "queue":
		os.Exit(runQueue(os.Args[2:]))
	case "dns":
		os.Exit(runDNS(os.Args[2:]))
	case "version", "--version":
		fmt.Println("kubemail", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "kubemail: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
