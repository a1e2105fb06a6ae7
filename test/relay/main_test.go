// Package relay tests kubemail's outbound half from the outside, with real programs only: the
// `kubemail server` binary run as two or more servers for a.test, b.test, … each on port 25 (and
// 587, 465, 143, 993) of its own loopback address (127.x.y.2, .3, …: all of 127.0.0.0/8 is
// loopback on Linux), a DNS server (miekg/dns) on 127.x.y.53 answering the MX and A records of
// the test domains (each server gets --dns-resolver), Python's smtplib and imaplib as the users'
// clients, go-smtp's client for loads, and Debian's Postfix as smarthost and as remote MX.
//
// What they show, each bounded in time and polled with deadlines:
//   - delivery_test: submission at A reaches bob's IMAP INBOX at B over MX; a 550 at B comes back
//     to alice as a DSN; with B down the message stays in A's queue, is retried, alice gets one
//     delay notice, and it arrives once when B is back; lifetime expiry bounces with 5.4.7; a
//     null MX (5.1.10) and a domain that does not exist (5.4.4) bounce at the first attempt; with
//     one of two destination servers down, retries go only to its recipient; a 20 MiB message
//     arrives intact; RelayPolicy rateLimit gives the fourth MAIL of a minute 450 4.7.1.
//   - openrelay_test: every classic relay trick on A's MX gets a 5xx and nothing reaches B,
//     while a client on a trusted network address does relay.
//   - crash_test: SIGKILL (and SIGTERM) of A under a submission load of 2000 messages; every
//     message that got a 250 reaches B; duplicates are counted and explained, not failed.
//   - postfix_test: Postfix as A's smarthost (plain, and STARTTLS with a verified certificate),
//     as remote MX (Maildir, 550 bounce), as sender into B, and as a remote sender's bounce
//     destination; no bounce of a bounce.
//   - queuecmd_test: `kubemail queue` list, delete and retry against the running server.
//   - msgauth_test: DKIM, SPF and DMARC pass at B for A's mail; a DMARC p=reject forgery is refused.
//   - mtasts_test: b.test publishes MTA-STS enforce; A defers while B's certificate is self-signed
//     (reason logged, nothing at B) and delivers over TLS once B has a certificate from the CA A
//     trusts.
//
// The tests bind port 25 and run Postfix, so they need root; as a non-root user, or without
// python3 or Postfix, they skip on a developer machine and fail under CI=true (`make test-deps`
// installs Postfix).
//
// The binary under test is $KUBEMAIL_BIN (a relative path is taken from the repository root);
// without it the tests build ./cmd/kubemail into a temporary directory. RELAY_KEEP=1 keeps
// Postfix's temp dirs for a look afterwards.
package relay

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kubemail/kubemail/test/internal/testbin"
)

var kubemailBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin, cleanup, err := testbin.Kubemail()
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		return 1
	}
	defer cleanup()
	kubemailBin = bin
	return m.Run()
}

// requireRoot skips (fails under CI) unless the test runs as root: binding port 25 and running
// Postfix need it.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("the relay tests bind port 25 and run Postfix: run them as root")
	}
	t.Skip("not root: the relay tests bind port 25 and run Postfix")
}

// requireTool returns the path of a program, skipping (failing under CI) when it is missing.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; `make test-deps` installs it", name)
	}
	t.Skipf("%s is not installed; run `make test-deps`", name)
	return ""
}
