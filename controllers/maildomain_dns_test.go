package controllers

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/controllers/dnscheck"
	"github.com/kubemail/kubemail/internal/dnstest"
)

// TestDNSChecksSchedule drives dnsChecks as reconciles do: a check starts in the background,
// its end is announced, the next reconcile takes the result; no check before the interval is
// up unless the records change; a check that is off removes the condition.
func TestDNSChecksSchedule(t *testing.T) {
	zone := dnstest.Start(t)
	zone.Publish(t, "example.test. MX 10 mail.example.test.")
	const interval = time.Hour
	d := newDNSChecks(DNSCheckOptions{Interval: interval, Resolver: dnscheck.NewResolver(zone.Addr), LookupTimeout: 5 * time.Second})
	md := &v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "example-test", Generation: 3},
		Spec: v1alpha1.MailDomainSpec{Domain: "example.test"}}
	status := v1alpha1.MailDomainStatus{DNSRecords: kmbuilder.DNSRecords(md, "", nil)[:1]} // the MX record
	ctx := context.Background()

	// reconcile is one reconcile's part: it returns the requeue and the condition.
	reconcile := func() (time.Duration, *metav1.Condition) {
		next := d.observe(ctx, md, &status)
		return next, meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionDNSPublished)
	}
	waitDone := func() {
		t.Helper()
		select {
		case ev := <-d.done:
			if ev.Object.Name != "example-test" || ev.Object.Namespace != "ns" {
				t.Fatalf("the check's end reconciles %s/%s", ev.Object.Namespace, ev.Object.Name)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the check did not end within 30s")
		}
	}

	next, c := reconcile()
	if c != nil || next != d.bound()+time.Second {
		t.Errorf("first reconcile: condition %+v, requeue %v; want none yet and a requeue after the check's bound", c, next)
	}
	waitDone()
	next, c = reconcile()
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonPublished || c.ObservedGeneration != 3 {
		t.Fatalf("after the check: %+v, want True/Published for generation 3", c)
	}
	if next < interval-time.Minute || next > interval+interval/10 {
		t.Errorf("requeue after %v, want the interval %v plus jitter", next, interval)
	}

	// Reconciles before the interval is up look nothing up.
	queries := zone.Queries("", "")
	for range 5 {
		reconcile()
	}
	if n := zone.Queries("", "") - queries; n != 0 {
		t.Errorf("%d DNS queries from reconciles within the interval", n)
	}

	// New records are checked at once; the old result stays until then.
	status.DNSRecords = append(status.DNSRecords, v1alpha1.DNSRecord{Name: "example.test.", Type: "TXT", Value: "v=spf1 mx ~all"})
	if _, c = reconcile(); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("while the new records are checked: %+v, want the last result", c)
	}
	waitDone()
	if _, c = reconcile(); c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonRecordsMissing ||
		c.Message != "1 of 2 records of status.dnsRecords are not published as they should be: TXT example.test.: none published." {
		t.Errorf("after checking the new records: %+v", c)
	}

	// Off: no condition, no requeue.
	var off *dnsChecks
	if next := off.observe(ctx, md, &status); next != 0 || meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionDNSPublished) != nil {
		t.Errorf("with the check off: requeue %v, conditions %+v", next, status.Conditions)
	}
}
