package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// DNSPublishedMetric is the manager's gauge of each MailDomain's DNSPublished condition, with
// labels namespace and maildomain (the MailDomain's): 1 when it is True, 0 when False. A
// MailDomain with no such condition (the check is off, or has not ended yet), one whose
// condition is Unknown, and a deleted one have no series, so that an alert on 0 ends with them.
const DNSPublishedMetric = "kubemail_maildomain_dns_published"

var dnsPublished = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: DNSPublishedMetric,
	Help: "Whether the DNS records in the MailDomain's status.dnsRecords are published (1) or not (0), " +
		"as its condition DNSPublished says; absent while the condition is absent or Unknown.",
}, []string{"namespace", "maildomain"})

func init() { metrics.Registry.MustRegister(dnsPublished) }

// MetricCollectors are the collectors this package registers with controller-runtime's
// metrics.Registry (served on the manager's /metrics).
func MetricCollectors() []prometheus.Collector { return []prometheus.Collector{dnsPublished} }

// publishDNSMetric sets name's series of DNSPublishedMetric from the conditions the reconcile
// writes.
func publishDNSMetric(name types.NamespacedName, conditions []metav1.Condition) {
	c := meta.FindStatusCondition(conditions, v1alpha1.ConditionDNSPublished)
	switch {
	case c != nil && c.Status == metav1.ConditionTrue:
		dnsPublished.WithLabelValues(name.Namespace, name.Name).Set(1)
	case c != nil && c.Status == metav1.ConditionFalse:
		dnsPublished.WithLabelValues(name.Namespace, name.Name).Set(0)
	default:
		forgetDNSMetric(name)
	}
}

// forgetDNSMetric deletes name's series of DNSPublishedMetric.
func forgetDNSMetric(name types.NamespacedName) {
	dnsPublished.DeleteLabelValues(name.Namespace, name.Name)
}
