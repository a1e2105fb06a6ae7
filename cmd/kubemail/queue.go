package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/kubemail/kubemail/mailserver/admin"
)

const queueUsage = `Usage:
  kubemail queue list [--json]          list the outbound queue
  kubemail queue retry ID...            try these messages now
  kubemail queue retry --all            try every queued message now
  kubemail queue delete ID...           remove messages without telling their senders

Manages the outbound queue of the running "kubemail server" that uses the same --data-dir,
through its admin socket <data-dir>/admin.sock. The socket is a local file with mode 0600 in
the data dir: whoever may open it (the server's user, root) may manage the queue, so there is
no password, and nothing of it is reachable over the network, unlike a TCP port. Run this as
the server's user on its host, or in Kubernetes inside its pod:

  kubectl exec deploy/kubemail -- kubemail queue list --data-dir /var/lib/kubemail

Flags (before or after the command):
`

// runQueue is `kubemail queue`.
func runQueue(args []string) int {
	return queueMain(context.Background(), args, os.Stdout, os.Stderr)
}

func queueMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kubemail queue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), queueUsage)
		fs.PrintDefaults()
	}
	dataDir := fs.String("data-dir", "data", "the data dir of the running server (its --data-dir)")
	all := fs.Bool("all", false, "retry: every queued message")
	asJSON := fs.Bool("json", false, "list: print the admin API's JSON instead of a table")
	// Flags may come before or after the command and its IDs.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) == 0 {
		fs.Usage()
		return 2
	}
	cmd, ids := pos[0], pos[1:]
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kubemail queue: "+format+"\n\n", a...)
		fs.Usage()
		return 2
	}
	c := admin.NewClient(*dataDir)
	fail := func(err error) int {
		if errors.Is(err, admin.ErrUnreachable) {
			fmt.Fprintf(stderr, "kubemail queue: %v\nIs `kubemail server --data-dir %s` running, and are you its user?\n", err, *dataDir)
		} else {
			fmt.Fprintf(stderr, "kubemail queue: %v\n", err)
		}
		return 1
	}
	switch cmd {
	case "list":
		if len(ids) > 0 || *all {
			return usageErr("list takes no arguments")
		}
		msgs, err := c.List(ctx)
		if err != nil {
			return fail(err)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(map[string]any{"messages": msgs})
			return 0
		}
		printQueue(stdout, msgs, time.Now())
	case "retry":
		if *all == (len(ids) > 0) {
			return usageErr("retry takes queue IDs or --all")
		}
		if *all {
			n, err := c.RetryAll(ctx)
			if err != nil {
				return fail(err)
			}
			fmt.Fprintf(stdout, "Scheduled %d %s for delivery now.\n", n, plural(n, "message", "messages"))
			return 0
		}
		status := 0
		for _, id := range ids {
			if err := c.Retry(ctx, id); err != nil {
				status = fail(err)
				continue
			}
			fmt.Fprintf(stdout, "Scheduled %s for delivery now.\n", id)
		}
		return status
	case "delete":
		if len(ids) == 0 || *all {
			return usageErr("delete takes one or more queue IDs")
		}
		status := 0
		for _, id := range ids {
			if err := c.Delete(ctx, id); err != nil {
				status = fail(err)
				continue
			}
			fmt.Fprintf(stdout, "Deleted %s.\n", id)
		}
		return status
	default:
		return usageErr("unknown command %q", cmd)
	}
	return 0
}

// printQueue writes one row per recipient; a message's ID, age, next attempt and sender are
// given on its first row only.
func printQueue(w io.Writer, msgs []admin.Message, now time.Time) {
	if len(msgs) == 0 {
		fmt.Fprintln(w, "The queue is empty.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tNEXT ATTEMPT\tSENDER\tRECIPIENT\tSTATE\tLAST REPLY")
	pending := 0
	for _, m := range msgs {
		next := "in " + shortDuration(m.NextAttempt.Sub(now))
		switch {
		case m.InFlight:
			next = "in progress"
		case !m.NextAttempt.After(now):
			next = "now"
		}
		from := m.From
		if from == "" {
			from = "<>"
		}
		for i, r := range m.Rcpts {
			if r.State == "pending" {
				pending++
			}
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t", m.ID, shortDuration(now.Sub(m.Arrival)), next, from)
			} else {
				fmt.Fprint(tw, "\t\t\t\t")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Addr, r.State, lastReply(r.Code, r.Status, r.Reply, r.RemoteMTA))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "%d %s, %d %s pending.\n", len(msgs), plural(len(msgs), "message", "messages"),
		pending, plural(pending, "recipient", "recipients"))
}

// lastReply is "451 4.4.1 text (host)", cut to a width that keeps the table readable; --json
// has it whole.
func lastReply(code int, status, reply, host string) string {
	if reply == "" && code == 0 {
		return "-"
	}
	var b strings.Builder
	if code != 0 {
		fmt.Fprintf(&b, "%d ", code)
	}
	if status != "" {
		b.WriteString(status + " ")
	}
	b.WriteString(strings.Join(strings.Fields(reply), " "))
	if host != "" {
		b.WriteString(" (" + host + ")")
	}
	s := b.String()
	const width = 72
	if utf8.RuneCountInString(s) > width {
		s = string([]rune(s)[:width-1]) + "…"
	}
	return s
}

// shortDuration is "42s", "12m05s", "3h05m" or "2d04h".
func shortDuration(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
