// Package manager is `kubemail manager`: the operator process, with leader election, metrics,
// health probes and the reconcilers of package controllers.
package manager

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
	"github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/controllers/dnscheck"
)

// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=kubemail-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=kubemail-system,resources=events,verbs=create;patch

// Scheme knows the kubemail kinds and the built-in kinds the operator writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Main runs the operator until SIGINT or SIGTERM; args are the flags after `kubemail manager`.
// It returns the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return MainContext(ctx, args)
}

// MainContext is Main until ctx ends: the tests run the operator exactly as the binary does.
func MainContext(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("kubemail manager", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: kubemail manager [flags]\n\n"+
			"Runs the kubemail operator: reconciles MailDomains, Mailboxes and RelayPolicies into mail\n"+
			"server StatefulSets. Connects to the cluster from KUBECONFIG, ~/.kube/config or in-cluster.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	metricsAddr := fs.String("metrics-bind-address", ":8080", `address of the Prometheus /metrics endpoint; "0" turns it off`)
	probeAddr := fs.String("health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	leaderElect := fs.Bool("leader-elect", false, "elect a leader, so that only one of several replicas reconciles")
	leaderNamespace := fs.String("leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's)")
	image := fs.String("image", os.Getenv("KUBEMAIL_IMAGE"), "mail server image of MailDomains that name none; the operator's own (env KUBEMAIL_IMAGE)")
	logFormat := fs.String("log-format", "text", `log format: "text" or "json"`)
	dnsInterval := fs.Duration("dns-check-interval", 10*time.Minute,
		"how often to check that each MailDomain's status.dnsRecords and the reverse DNS of its address are published (condition DNSPublished); 0 turns the check off, at least "+minDNSCheckInterval.String()+" otherwise")
	dnsResolver := fs.String("dns-resolver", "", "HOST:PORT of the DNS server the DNS check asks (default: the name servers of /etc/resolv.conf)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kubemail manager: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *dnsInterval < 0 || *dnsInterval > 0 && *dnsInterval < minDNSCheckInterval {
		fmt.Fprintf(os.Stderr, "kubemail manager: --dns-check-interval must be 0 (off) or at least %v, not %v\n", minDNSCheckInterval, *dnsInterval)
		return 2
	}
	if *dnsResolver != "" {
		if _, _, err := net.SplitHostPort(*dnsResolver); err != nil {
			fmt.Fprintf(os.Stderr, "kubemail manager: --dns-resolver must be HOST:PORT: %v\n", err)
			return 2
		}
	}
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(os.Stderr, nil)
	case "json":
		handler = slog.NewJSONHandler(os.Stderr, nil)
	default:
		fmt.Fprintf(os.Stderr, "kubemail manager: --log-format must be text or json, not %q\n", *logFormat)
		return 2
	}
	logger := slog.New(handler)
	ctrl.SetLogger(logr.FromSlogHandler(handler))
	if *image == "" {
		logger.Warn("No default mail server image: MailDomains must set spec.image (set --image or KUBEMAIL_IMAGE)")
	}

	dnsCheck := controllers.DNSCheckOptions{Interval: *dnsInterval}
	if *dnsResolver != "" {
		dnsCheck.Resolver = dnscheck.NewResolver(*dnsResolver)
	}
	if err := run(ctx, options{
		metricsAddr: *metricsAddr, probeAddr: *probeAddr, leaderElect: *leaderElect,
		leaderNamespace: *leaderNamespace, image: *image, dnsCheck: dnsCheck,
	}); err != nil {
		logger.Error("Manager stopped", "err", err)
		return 1
	}
	return 0
}

// minDNSCheckInterval keeps the DNS check from hammering the name servers: each check of a
// domain makes about ten lookups.
const minDNSCheckInterval = 10 * time.Second

type options struct {
	metricsAddr, probeAddr string
	leaderElect            bool
	leaderNamespace, image string
	dnsCheck               controllers.DNSCheckOptions
}

func run(ctx context.Context, o options) error {
	scheme, err := Scheme()
	if err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("finding the cluster: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "kubemail-operator.mail.kubemail.io",
		LeaderElectionNamespace: o.leaderNamespace,
		// A new leader takes over at once when the old one stops cleanly.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := controllers.SetupWithOptions(ctx, mgr, controllers.Options{Builder: builder.Options{Image: o.image}, DNSCheck: o.dnsCheck}); err != nil {
		return fmt.Errorf("setting up the controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
