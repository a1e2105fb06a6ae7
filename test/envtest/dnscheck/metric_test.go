//go:build envtest

package dnscheck

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
)

// TestDNSPublishedMetric follows the manager's gauge kubemail_maildomain_dns_published, as its
// /metrics serves it, through a MailDomain's life: 0 while its records are missing, 1 once they
// are published, no series while the lookups fail (Unknown), and none once it is deleted (an
// alert on 0 must not fire forever for a domain that is gone).
func TestDNSPublishedMetric(t *testing.T) {
	ctx := context.Background()
	zone, k8s, _, md := startDomain(t, "dns-metric-")
	key := client.ObjectKeyFromObject(md)

	// waitGauge waits for the condition to be status (none for "") and the series to say want
	// (none for a negative want).
	waitGauge := func(status metav1.ConditionStatus, want float64) {
		t.Helper()
		eventually(t, fmt.Sprintf("DNSPublished=%q and the gauge at %v", status, want), func() error {
			if err := k8s.Get(ctx, key, md); err != nil {
				return err
			}
			c := meta.FindStatusCondition(md.Status.Conditions, v1alpha1.ConditionDNSPublished)
			if (c == nil) != (status == "") || c != nil && c.Status != status {
				return fmt.Errorf("DNSPublished is %+v", c)
			}
			return gaugeIs(t, md.Namespace, md.Name, want)
		})
	}

	// The records to publish are complete once the operator has seen the load balancer's address.
	eventually(t, "status.dnsRecords has the load balancer's A record", func() error {
		if err := k8s.Get(ctx, key, md); err != nil {
			return err
		}
		for _, r := range md.Status.DNSRecords {
			if r.Type == "A" && r.Value == lbAddress {
				return nil
			}
		}
		return fmt.Errorf("status.dnsRecords = %+v", md.Status.DNSRecords)
	})
	records := md.Status.DNSRecords
	waitGauge(metav1.ConditionFalse, 0) // nothing published yet
	var lines []string
	for _, r := range records {
		lines = append(lines, zoneLine(r))
	}
	zone.Publish(t, lines...)
	zone.AddPTR(lbAddress, "mail.example.test.") // the reverse DNS, as the cloud provider would
	waitGauge(metav1.ConditionTrue, 1)

	// The name servers fail: the condition is Unknown, which is no reason to alert on the records.
	for _, r := range records {
		zone.SetServfail(r.Name, true)
	}
	waitGauge(metav1.ConditionUnknown, -1)
	for _, r := range records {
		zone.SetServfail(r.Name, false)
	}
	waitGauge(metav1.ConditionTrue, 1)

	// Records missing again, then the MailDomain deleted: its series goes with it.
	zone.Remove(records[0].Name, records[0].Type)
	waitGauge(metav1.ConditionFalse, 0)
	must(t, k8s.Delete(ctx, md))
	eventually(t, "the deleted MailDomain's series is gone", func() error {
		return gaugeIs(t, md.Namespace, md.Name, -1)
	})
}

// gaugeIs checks the value of the MailDomain's series of the gauge in controller-runtime's
// registry (what the manager's /metrics serves); a negative want means no series.
func gaugeIs(t *testing.T, namespace, name string, want float64) error {
	t.Helper()
	families, err := metrics.Registry.Gather()
	must(t, err)
	found := false
	for _, f := range families {
		if f.GetName() != controllers.DNSPublishedMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] != namespace || labels["maildomain"] != name {
				continue
			}
			if want < 0 {
				return fmt.Errorf("series %v = %v, want none", labels, m.GetGauge().GetValue())
			}
			if got := m.GetGauge().GetValue(); got != want {
				return fmt.Errorf("series %v = %v, want %v", labels, got, want)
			}
			found = true
		}
	}
	if !found && want >= 0 {
		return fmt.Errorf("no series {namespace=%q, maildomain=%q} of %s", namespace, name, controllers.DNSPublishedMetric)
	}
	return nil
}
