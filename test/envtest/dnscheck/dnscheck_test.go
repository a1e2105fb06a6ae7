//go:build envtest

package dnscheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
	"github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/controllers/dnscheck"
	"github.com/kubemail/kubemail/controllers/manager"
	"github.com/kubemail/kubemail/internal/dnstest"
)

const (
	operatorNamespace = "kubemail-system"
	// checkInterval is the test's --dns-check-interval: short, so that a fix shows soon.
	checkInterval = time.Second
	lbAddress     = "192.0.2.25"
)

// TestDNSPublished runs a MailDomain through a zone that first lacks its records, then has a
// truncated DKIM key, then has everything; Ready never changes on the way.
func TestDNSPublished(t *testing.T) {
	ctx := context.Background()
	zone, k8s, writes, md := startDomain(t, "dns-")
	ns := md.Namespace
	get := func(obj client.Object) error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "example-test"}, obj)
	}

	// envtest runs no StatefulSet controller either: play it, so that the domain is Ready.
	eventually(t, "the StatefulSet reports its pod ready", func() error {
		var sts appsv1.StatefulSet
		if err := get(&sts); err != nil {
			return err
		}
		sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 1, ReadyReplicas: 1,
			AvailableReplicas: 1, CurrentReplicas: 1, UpdatedReplicas: 1}
		return k8s.Status().Update(ctx, &sts)
	})

	// waitDNS waits for DNSPublished to have status and reason (and pass also, if given), with
	// Ready unaffected.
	waitDNS := func(status metav1.ConditionStatus, reason string, also func(c *metav1.Condition) error) *metav1.Condition {
		t.Helper()
		var c *metav1.Condition
		eventually(t, fmt.Sprintf("DNSPublished=%s/%s", status, reason), func() error {
			if err := get(md); err != nil {
				return err
			}
			if ready := meta.FindStatusCondition(md.Status.Conditions, v1alpha1.ConditionReady); ready == nil ||
				ready.Status != metav1.ConditionTrue || ready.Reason != controllers.ReasonAvailable {
				return fmt.Errorf("Ready is %+v, want True/Available", ready)
			}
			c = meta.FindStatusCondition(md.Status.Conditions, v1alpha1.ConditionDNSPublished)
			if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != md.Generation {
				return fmt.Errorf("DNSPublished is %+v", c)
			}
			if also != nil {
				return also(c)
			}
			return nil
		})
		return c
	}

	// The records include the load balancer's address once the operator has seen it; the
	// condition follows at the end of the check of those records, and of the address's reverse
	// DNS (PTR), which its owner publishes and status.dnsRecords does not list.
	kinds := []string{"MX example.test.", "A mail.example.test.", "TXT example.test.", "TXT kubemail._domainkey.example.test.", "TXT _dmarc.example.test."}
	c := waitDNS(metav1.ConditionFalse, controllers.ReasonRecordsMissing, func(c *metav1.Condition) error {
		for _, kind := range append(kinds, "PTR "+lbAddress) {
			if !strings.Contains(c.Message, kind+": none published") {
				return fmt.Errorf("the message does not name %s as missing: %s", kind, c.Message)
			}
		}
		return nil
	})
	t.Logf("nothing published: %s", c.Message)
	records := md.Status.DNSRecords
	byKind := map[string]v1alpha1.DNSRecord{}
	for _, r := range records {
		byKind[r.Type+" "+r.Name] = r
	}
	if len(records) != len(kinds) {
		t.Errorf("status.dnsRecords = %+v, want %s", records, kinds)
	}
	waitEvent(t, k8s, ns, corev1.EventTypeWarning, controllers.ReasonRecordsMissing)

	// Everything, but the DKIM key cut at the first TXT string, as some DNS panels do.
	dkim := byKind["TXT kubemail._domainkey.example.test."]
	lines := []string{dnstest.TXT(dkim.Name, dkim.Value[:255])}
	for _, r := range records {
		if r != dkim {
			lines = append(lines, zoneLine(r))
		}
	}
	zone.Publish(t, lines...)
	zone.AddPTR(lbAddress, "mail.example.test.") // as the cloud provider would
	c = waitDNS(metav1.ConditionFalse, controllers.ReasonRecordsMismatch, nil)
	t.Logf("DKIM truncated: %s", c.Message)
	if !strings.Contains(c.Message, "TXT kubemail._domainkey.example.test.: found a truncated DKIM key") || strings.Contains(c.Message, "MX ") {
		t.Errorf("the message should name only the truncated DKIM key: %s", c.Message)
	}

	zone.Remove(dkim.Name, "TXT")
	zone.Publish(t, zoneLine(dkim))
	fixed := time.Now()
	c = waitDNS(metav1.ConditionTrue, controllers.ReasonPublished, nil)
	t.Logf("published (seen %v after the fix, check interval %v): %s", time.Since(fixed).Round(time.Millisecond), checkInterval, c.Message)
	waitEvent(t, k8s, ns, corev1.EventTypeNormal, controllers.ReasonPublished)

	// A steady state: checks go on (each asks the zone for the five records and the PTR, and
	// SPF's "mx" and the PTR's confirmation again for the MX and the mail host), and write
	// nothing.
	queries, w, since := zone.Queries("", ""), writes.Load(), time.Now()
	eventually(t, "two more checks", func() error {
		if n := zone.Queries("", "") - queries; n < 2*len(records) {
			return fmt.Errorf("%d queries", n)
		}
		return nil
	})
	if n := writes.Load() - w; n != 0 {
		t.Errorf("the operator wrote %d times in a steady state of %v", n, time.Since(since))
	}
	must(t, get(md))
	if got := meta.FindStatusCondition(md.Status.Conditions, v1alpha1.ConditionDNSPublished); got == nil || !got.LastTransitionTime.Equal(&c.LastTransitionTime) {
		t.Errorf("DNSPublished changed in a steady state: %+v, was %+v", got, c)
	}
}

// zoneLine is a status.dnsRecords entry as a zone file line.
func zoneLine(r v1alpha1.DNSRecord) string {
	if r.Type == "TXT" {
		return dnstest.TXT(r.Name, r.Value)
	}
	return r.Name + " " + r.Type + " " + r.Value
}

// startDomain starts a DNS zone and the operator checking the DNS against it, creates the
// MailDomain example-test (domain example.test, a LoadBalancer Service) in a new namespace
// named after prefix, and, as the cloud controller envtest lacks would, gives its Service the
// address lbAddress (an A record, and SPF evaluated for it).
func startDomain(t *testing.T, prefix string) (*dnstest.Server, client.Client, *atomic.Int64, *v1alpha1.MailDomain) {
	t.Helper()
	ctx := context.Background()
	zone := dnstest.Start(t)
	k8s, writes := startOperator(t, controllers.DNSCheckOptions{
		Interval:      checkInterval,
		Resolver:      dnscheck.NewResolver(zone.Addr),
		LookupTimeout: 2 * time.Second,
	})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	must(t, k8s.Create(ctx, ns))
	md := &v1alpha1.MailDomain{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "example-test"},
		Spec: v1alpha1.MailDomainSpec{Domain: "example.test",
			Service: &v1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}},
	}
	must(t, k8s.Create(ctx, md))
	eventually(t, "the load balancer has an address", func() error {
		var svc corev1.Service
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(md), &svc); err != nil {
			return err
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: lbAddress}}
		return k8s.Status().Update(ctx, &svc)
	})
	return zone, k8s, writes, md
}

// startOperator starts kube-apiserver and etcd, and the operator with the DNS check, as the
// ServiceAccount of config/rbac with only the generated roles: the check needs no permission
// more. It returns the test's client and the count of the operator's writes.
func startOperator(t *testing.T, dns controllers.DNSCheckOptions) (client.Client, *atomic.Int64) {
	t.Helper()
	root, err := filepath.Abs("../../..")
	must(t, err)
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s (make envtest-assets): %v", assets, err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme, err := manager.Scheme()
	must(t, err)
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	must(t, err)
	must(t, applyRBAC(k8s, filepath.Join(root, "config", "rbac")))

	level := slog.LevelError
	if os.Getenv("ENVTEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	mgrCfg := rest.CopyConfig(cfg)
	mgrCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + operatorNamespace + ":kubemail-manager"}
	writes := &atomic.Int64{}
	mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{
		Scheme:  scheme,
		Cache:   controllers.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Once per test process is not once per manager with -count=N.
		Controller: config.Controller{SkipNameValidation: new(true)},
		NewClient: func(config *rest.Config, options client.Options) (client.Client, error) {
			c, err := client.NewWithWatch(config, options)
			if err != nil {
				return nil, err
			}
			return interceptor.NewClient(c, countWrites(writes)), nil
		},
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	must(t, controllers.SetupWithOptions(ctx, mgr, controllers.Options{
		Builder: builder.Options{Image: "registry.test/kubemail:envtest"}, DNSCheck: dns,
	}))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("manager: %v", err)
		}
	})
	return k8s, writes
}

// countWrites counts every write of the operator's client, of objects and statuses.
func countWrites(n *atomic.Int64) interceptor.Funcs {
	return interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			n.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			n.Add(1)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			n.Add(1)
			return c.Patch(ctx, obj, patch, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			n.Add(1)
			return c.Apply(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			n.Add(1)
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			n.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	}
}

// applyRBAC creates the operator's namespace and the objects of config/rbac.
func applyRBAC(k8s client.Client, dir string) error {
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if err := k8s.Create(ctx, u); err != nil {
				return fmt.Errorf("%s: %s %s: %w", f, u.GetKind(), u.GetName(), err)
			}
		}
	}
	return nil
}

// waitEvent waits for an Event of the type and reason about the MailDomain example-test.
func waitEvent(t *testing.T, k8s client.Client, ns, typ, reason string) {
	t.Helper()
	eventually(t, fmt.Sprintf("a %s %s Event", typ, reason), func() error {
		var events eventsv1.EventList
		if err := k8s.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Regarding.Kind == "MailDomain" && e.Regarding.Name == "example-test" && e.Type == typ && e.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("not among %d Events", len(events.Items))
	})
}

// eventually polls check until it returns nil, or fails after 30 s with its last error.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after 30s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
