//go:build envtest

package envtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// BenchmarkThousandMailboxes reconciles 1,000 Mailboxes (plain passwords, hashed by the operator)
// across 10 MailDomains and reports the time until every Mailbox is Active and every domain
// counts its 100, the operator's API writes per object, and its writes during a steady period
// afterwards (KUBEMAIL_BENCH_STEADY, default 1m), which must be zero. Run with
// `make bench-operator`.
func BenchmarkThousandMailboxes(b *testing.B) {
	const domains, perDomain = 10, 100
	steady := time.Minute
	if s := os.Getenv("KUBEMAIL_BENCH_STEADY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		steady = d
	}
	ctx := context.Background()
	for range b.N {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
		if err := k8s.Create(ctx, ns); err != nil {
			b.Fatal(err)
		}
		writes0 := mgrWrites.Load()
		start := time.Now()
		for d := range domains {
			domain := fmt.Sprintf("bench%d.test", d)
			if err := k8s.Create(ctx, mailDomain(ns.Name, fmt.Sprintf("bench%d", d), domain)); err != nil {
				b.Fatal(err)
			}
			for m := range perDomain {
				name := fmt.Sprintf("user%03d-bench%d", m, d)
				secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name + "-pw"},
					StringData: map[string]string{"password": "password-of-" + name}}
				if err := k8s.Create(ctx, secret); err != nil {
					b.Fatal(err)
				}
				if err := k8s.Create(ctx, mailbox(ns.Name, name, fmt.Sprintf("user%03d@%s", m, domain), name+"-pw")); err != nil {
					b.Fatal(err)
				}
			}
		}
		created := time.Since(start)
		deadline := time.Now().Add(10 * time.Minute)
		for {
			active, counted, err := benchProgress(ctx, ns.Name, perDomain)
			if err != nil {
				b.Fatal(err)
			}
			if active == domains*perDomain && counted == domains {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("after 10m: %d of %d Mailboxes Active, %d of %d MailDomains complete", active, domains*perDomain, counted, domains)
			}
			time.Sleep(250 * time.Millisecond)
		}
		ready := time.Since(start)
		writes := mgrWrites.Load() - writes0

		before := mgrWrites.Load()
		time.Sleep(steady) // measuring an interval: nothing to wait for but the clock
		steadyWrites := mgrWrites.Load() - before
		if steadyWrites != 0 {
			b.Errorf("the operator wrote %d times in a steady %s", steadyWrites, steady)
		}
		b.ReportMetric(created.Seconds(), "s-to-create")
		b.ReportMetric(ready.Seconds(), "s-to-all-ready")
		b.ReportMetric(float64(writes)/float64(domains*perDomain+domains), "writes/object")
		b.ReportMetric(float64(steadyWrites), "steady-writes")
	}
}

// benchProgress counts the Active Mailboxes and the MailDomains whose status counts all of theirs.
func benchProgress(ctx context.Context, ns string, perDomain int32) (active, complete int, err error) {
	var mailboxes v1alpha1.MailboxList
	if err := k8s.List(ctx, &mailboxes, client.InNamespace(ns)); err != nil {
		return 0, 0, err
	}
	for _, mb := range mailboxes.Items {
		if c := meta.FindStatusCondition(mb.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
			active++
		}
	}
	var domains v1alpha1.MailDomainList
	if err := k8s.List(ctx, &domains, client.InNamespace(ns)); err != nil {
		return 0, 0, err
	}
	for _, md := range domains.Items {
		if md.Status.Mailboxes == perDomain {
			complete++
		}
	}
	return active, complete, nil
}
