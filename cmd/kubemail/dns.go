package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/kubemail/kubemail/api/v1alpha1"
	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/controllers/dnscheck"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/msgauth"
)

const dnsUsage = `Usage: kubemail dns --manifests DIR [--public-ip IP]... [--hostname HOST] [--check] [flags]

Prints the DNS records to publish for each MailDomain of --manifests, for a "kubemail server"
run on its own (on Kubernetes the operator lists them in MailDomain status.dnsRecords): the MX
record naming the mail host, the mail host's A and AAAA records (one per --public-ip), SPF, the
DKIM key the server made in its data dir, and DMARC, in zone file syntax to paste into the
domain's zone. They are the records the operator lists, rendered by the same code.

It also names the reverse DNS (PTR) record of each --public-ip, which Gmail and Outlook require
of a sending address: that one is not in your zone, the owner of the address (the cloud
provider, the ISP) sets it, so it is printed as a comment.

The DKIM key is read, never made: the server makes it at its first start (in DATA/dkim, or
--dkim-keys-dir). Give the same --data-dir, --dkim-keys-dir and --dkim-selector as the server.

The mail host is --hostname (give the server's --hostname), by default mail.DOMAIN for each
domain. Several domains on one server share one address, whose PTR can name one host only: give
them one --hostname.

With --check, looks each record up (through --dns-resolver, or the system's name servers) the
way a receiving mail server will, and the PTR record of each --public-ip (forward-confirmed:
the mail host's addresses include it), and prints OK, missing, wrong or failed for each, with
what was found. Exit status 0 when every record is published as it should be, 1 otherwise,
2 for a usage error.

Examples:
  kubemail dns --manifests config/samples --data-dir data --public-ip 203.0.113.25
  kubemail dns --manifests config/samples --data-dir data --public-ip 203.0.113.25 --check

Flags:
`

// runDNS is `kubemail dns`.
func runDNS(args []string) int {
	return dnsMain(context.Background(), args, os.Stdout, os.Stderr)
}

type dnsOptions struct {
	manifests, dataDir, keysDir, selector, hostname, resolver string
	ips                                                       []netip.Addr
	check                                                     bool
}

func dnsMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kubemail dns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), dnsUsage)
		fs.PrintDefaults()
	}
	var o dnsOptions
	fs.StringVar(&o.manifests, "manifests", "config/samples", "directory of the server's manifests (its --manifests)")
	fs.StringVar(&o.dataDir, "data-dir", "data", "the server's data dir (its --data-dir), where it keeps the DKIM keys in dkim/")
	fs.StringVar(&o.keysDir, "dkim-keys-dir", "", "the server's --dkim-keys-dir (default: DATA/dkim)")
	fs.StringVar(&o.selector, "dkim-selector", msgauth.DefaultSelector, "the server's --dkim-selector")
	fs.StringVar(&o.hostname, "hostname", "", "the mail host: the server's --hostname, named by the MX records (default: mail.DOMAIN for each domain)")
	fs.Func("public-ip", "a public address of the server, IPv4 or IPv6 (repeat for several): its A or AAAA record and its PTR", func(s string) error {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return errors.New("not an IP address")
		}
		o.ips = append(o.ips, ip.Unmap())
		return nil
	})
	fs.BoolVar(&o.check, "check", false, "look the records up and say which are missing or wrong")
	fs.StringVar(&o.resolver, "dns-resolver", "", "HOST:PORT of the DNS server --check asks (default: the system's name servers)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kubemail dns: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if o.resolver != "" {
		if _, _, err := net.SplitHostPort(o.resolver); err != nil {
			return usageErr("--dns-resolver %q is not HOST:PORT", o.resolver)
		}
	}
	if o.hostname != "" {
		if err := config.CheckDomain(strings.TrimSuffix(o.hostname, ".")); err != nil {
			return usageErr("--hostname %q: %v", o.hostname, err)
		}
	}
	if o.keysDir == "" {
		o.keysDir = filepath.Join(o.dataDir, "dkim")
	}
	domains, err := loadMailDomains(o.manifests)
	if err != nil {
		fmt.Fprintf(stderr, "kubemail dns: %v\n", err)
		return 1
	}
	keys := msgauth.NewKeys(o.keysDir, msgauth.KeysOptions{Selector: o.selector})
	status := 0
	for i, md := range domains {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		d := o.domain(md, keys)
		if o.check {
			if !d.check(ctx, stdout, o) {
				status = 1
			}
		} else {
			d.print(stdout, o)
		}
	}
	return status
}

// loadMailDomains reads the MailDomains of dir, checked as the server checks them, in the
// order of their domain names.
func loadMailDomains(dir string) ([]*v1alpha1.MailDomain, error) {
	objs, src, err := config.ReadManifests(dir)
	if err != nil {
		return nil, err
	}
	// The passwords are not needed here: nothing is hashed.
	noHash := func(_, _ string) (string, error) { return "", nil }
	if _, err := config.Resolve(objs, noHash); err != nil {
		return nil, src.Annotate(err)
	}
	if len(objs.MailDomains) == 0 {
		return nil, fmt.Errorf("%s declares no MailDomain", dir)
	}
	var mds []*v1alpha1.MailDomain
	for i := range objs.MailDomains {
		mds = append(mds, &objs.MailDomains[i])
	}
	slices.SortFunc(mds, func(a, b *v1alpha1.MailDomain) int {
		return strings.Compare(kmbuilder.DomainName(a), kmbuilder.DomainName(b))
	})
	return mds, nil
}

// dnsDomain is what kubemail dns says of one MailDomain.
type dnsDomain struct {
	name, host string
	records    []v1alpha1.DNSRecord
	// noKey, when set, says why there is no DKIM record.
	noKey string
}

func (o dnsOptions) domain(md *v1alpha1.MailDomain, keys *msgauth.Keys) dnsDomain {
	d := dnsDomain{name: kmbuilder.DomainName(md), host: kmbuilder.MailHost(md)}
	if o.hostname != "" {
		d.host = strings.ToLower(strings.TrimSuffix(o.hostname, "."))
	}
	var dkim string
	// Stat first: Keys.DNSRecord would make a key that is missing, and a key made here is not
	// the one a server with other flags (or on another machine) signs with.
	path := keys.Path(d.name)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		d.noKey = fmt.Sprintf("no key yet (%s does not exist): start the server once to make the DKIM key "+
			"(kubemail server --manifests %s --data-dir %s), then run this again", path, o.manifests, o.dataDir)
	} else if _, value, err := keys.DNSRecord(d.name); err != nil {
		d.noKey = err.Error()
	} else {
		dkim = value
	}
	var addrs []string
	for _, ip := range o.ips {
		addrs = append(addrs, ip.String())
	}
	d.records = kmbuilder.MailDNSRecords(d.name, d.host, o.selector, dkim, addrs)
	return d
}

// print writes d's records in zone file syntax.
func (d dnsDomain) print(w io.Writer, o dnsOptions) {
	fmt.Fprintf(w, "; %s: publish these records in the zone of %s\n", d.name, d.name)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	var elsewhere []string
	for _, r := range d.records {
		value := r.Value
		if r.Type == "TXT" {
			var quoted []string
			for _, s := range msgauth.TXTStrings(value) {
				quoted = append(quoted, zoneQuote(s))
			}
			value = strings.Join(quoted, " ")
		}
		line := fmt.Sprintf("%s\tIN\t%s\t%s\n", r.Name, r.Type, value)
		// The addresses of a mail host in another domain (--hostname) belong in its zone: a
		// zone file rejects records out of its zone.
		if name := strings.ToLower(r.Name); name != d.name+"." && !strings.HasSuffix(name, "."+d.name+".") {
			elsewhere = append(elsewhere, line)
			continue
		}
		fmt.Fprint(tw, line)
	}
	tw.Flush()
	if len(elsewhere) > 0 {
		fmt.Fprintf(w, "; The mail host %s. is not in this zone: publish its addresses in its own zone\n", d.host)
		for _, l := range elsewhere {
			fmt.Fprint(w, ";   "+strings.ReplaceAll(l, "\t", " "))
		}
	}
	if d.noKey != "" {
		fmt.Fprintf(w, "; DKIM (%s._domainkey.%s.): %s\n", o.selector, d.name, d.noKey)
	}
	if len(o.ips) == 0 {
		fmt.Fprintf(w, "; The A and AAAA records of %s.: give the server's public addresses with --public-ip\n", d.host)
		return
	}
	fmt.Fprintf(w, "; Reverse DNS: not in your zone; ask the owner of the address (your cloud provider or ISP) to set\n")
	for _, ip := range o.ips {
		r := dnscheck.PTRRecord(ip, d.host)
		fmt.Fprintf(w, ";   %s IN PTR %s\n", r.Name, r.Value)
	}
}

// zoneQuote is s as a zone file character-string (RFC 1035 5.1).
func zoneQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// check looks d's records up and writes one line per record; it reports whether all are OK.
func (d dnsDomain) check(ctx context.Context, w io.Writer, o dnsOptions) bool {
	c := dnscheck.Checker{Resolver: dnscheck.NewResolver(o.resolver)}
	dom := dnscheck.Domain{Name: d.name, Records: d.records, Addresses: o.ips}
	if len(o.ips) > 0 {
		dom.MailHost = d.host
	}
	report := c.Check(ctx, dom)
	fmt.Fprintf(w, "%s:\n", d.name)
	bad, failed := 0, 0
	for _, f := range report.Findings {
		label := f.Record.Type + " " + f.Record.Name
		if f.Address.IsValid() {
			label = "PTR " + f.Address.String() + " (" + f.Record.Name + ")"
		}
		outcome := map[dnscheck.Outcome]string{dnscheck.OK: "OK", dnscheck.Missing: "missing",
			dnscheck.Mismatch: "wrong", dnscheck.Failed: "failed"}[f.Outcome]
		line := fmt.Sprintf("  %-8s %s", outcome, label)
		if f.Outcome == dnscheck.Failed {
			failed++
		}
		if f.Outcome != dnscheck.OK {
			bad++
			line += ": " + f.Found
		}
		if f.Note != "" {
			line += " (" + f.Note + ")"
		}
		fmt.Fprintln(w, line)
	}
	n := len(report.Findings)
	if d.noKey != "" {
		bad++
		n++
		fmt.Fprintf(w, "  %-8s TXT %s._domainkey.%s.: %s\n", "missing", o.selector, d.name, d.noKey)
	}
	if len(o.ips) == 0 {
		fmt.Fprintf(w, "  The A and AAAA records of %s. and its reverse DNS were not checked: give the server's public addresses with --public-ip\n", d.host)
	}
	if bad == 0 {
		fmt.Fprintf(w, "All %d records of %s are published.\n", n, d.name)
		return true
	}
	if wrong := bad - failed; wrong > 0 {
		fmt.Fprintf(w, "%d of %d records of %s are not published as they should be.", wrong, n, d.name)
		if failed > 0 {
			fmt.Fprintf(w, " %d more could not be looked up.", failed)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "%d of %d records of %s could not be looked up.\n", failed, n, d.name)
	}
	return false
}
