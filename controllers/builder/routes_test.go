package builder

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

func TestClusterRoutes(t *testing.T) {
	domain := func(ns, name, d string) v1alpha1.MailDomain {
		return v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.MailDomainSpec{Domain: d}}
	}
	deleting := domain("c", "going", "going.test")
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	cfg := sampleConfig() // example.test in namespace mail, whose user policy routes legacy.example
	cfg.ClusterDomains = []v1alpha1.MailDomain{
		domain("z", "zeta", "Zeta.Test."),
		*cfg.Domain,
		domain("other", "example-test", "example.test"), // our own domain, served elsewhere too
		domain("a", "dup", "dup.test"),                  // declared twice: ambiguous
		domain("b", "dup", "dup.test"),
		deleting,
		domain("legacy", "legacy", "legacy.example"), // the user's route wins
		domain("b", "beta", "beta.test"),
	}
	rp := clusterRoutes(cfg)
	if rp == nil || rp.Name != ClusterRoutesPolicy || rp.Namespace != "mail" || len(rp.Spec.Domains) != 0 {
		t.Fatalf("policy = %+v", rp)
	}
	want := []v1alpha1.Route{
		{Domains: []string{"beta.test"}, Host: "beta.b.svc", Port: 25},
		{Domains: []string{"zeta.test"}, Host: "zeta.z.svc", Port: 25},
	}
	if !reflect.DeepEqual(rp.Spec.Routes, want) {
		t.Errorf("routes = %+v, want %+v", rp.Spec.Routes, want)
	}

	cfg.ClusterDomains = []v1alpha1.MailDomain{*cfg.Domain}
	if rp := clusterRoutes(cfg); rp != nil {
		t.Errorf("alone in the cluster: policy %+v, want none", rp)
	}
	cm, err := BuildConfigMap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cm.Data[ObjectsKey], ClusterRoutesPolicy) {
		t.Errorf("objects.yaml has an empty routes policy:\n%s", cm.Data[ObjectsKey])
	}
}

// A user's RelayPolicy with the reserved name (which the CRD refuses) would make objects.yaml
// declare it twice and the server refuse to load it: BuildConfigMap refuses instead.
func TestClusterRoutesNameReserved(t *testing.T) {
	cfg := sampleConfig()
	cfg.RelayPolicies[0].Name = ClusterRoutesPolicy
	if _, err := BuildConfigMap(cfg); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("err = %v, want the reserved name refused", err)
	}
}
