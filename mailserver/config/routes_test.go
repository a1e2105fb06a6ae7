package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

func routesObjects(routes ...v1alpha1.Route) Objects {
	return Objects{
		MailDomains: []v1alpha1.MailDomain{{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v1alpha1.MailDomainSpec{Domain: "a.test"}}},
		RelayPolicies: []v1alpha1.RelayPolicy{{ObjectMeta: metav1.ObjectMeta{Namespace: "mail", Name: "routes"},
			Spec: v1alpha1.RelayPolicySpec{Routes: routes}}},
	}
}

func TestRoutesResolve(t *testing.T) {
	cfg, err := Resolve(routesObjects(
		v1alpha1.Route{Domains: []string{"B.Test.", "c.test"}, Host: "Kubemail-B.mail.svc.cluster.local."},
		v1alpha1.Route{Domains: []string{"d.test"}, Host: "fd00::25", Port: 2525},
		v1alpha1.Route{Domains: []string{"e.test"}, Host: "relay_e"},
	), plainHasher)
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Domains: []string{"b.test", "c.test"}, Host: "kubemail-b.mail.svc.cluster.local", Port: 25},
		{Domains: []string{"d.test"}, Host: "fd00::25", Port: 2525},
		{Domains: []string{"e.test"}, Host: "relay_e", Port: 25},
	}
	if len(cfg.RelayPolicies) != 1 || !reflect.DeepEqual(cfg.RelayPolicies[0].Routes, want) {
		t.Errorf("policies = %+v, want routes %+v", cfg.RelayPolicies, want)
	}
}

// A bad route leaves its RelayPolicy out and names the field; the domain still resolves.
func TestRoutesErrors(t *testing.T) {
	long := strings.Repeat("a", 64) + ".test"
	tests := []struct {
		name  string
		route []v1alpha1.Route
		field string
		msg   string
	}{
		{"own domain", []v1alpha1.Route{{Domains: []string{"b.test", "A.test"}, Host: "h"}},
			"spec.routes[0].domains[1]", `"a.test" is served here`},
		{"routed twice", []v1alpha1.Route{{Domains: []string{"b.test"}, Host: "h"}, {Domains: []string{"c.test", "b.test."}, Host: "h2"}},
			"spec.routes[1].domains[1]", `"b.test" is already routed by spec.routes[0]`},
		{"no domains", []v1alpha1.Route{{Host: "h"}}, "spec.routes[0].domains", "at least one"},
		{"bad domain", []v1alpha1.Route{{Domains: []string{"b.test"}, Host: "h"}, {Domains: []string{long}, Host: "h"}},
			"spec.routes[1].domains[0]", "overlong"},
		{"unqualified domain", []v1alpha1.Route{{Domains: []string{"localhost"}, Host: "h"}},
			"spec.routes[0].domains[0]", "not a fully qualified domain name"},
		{"empty host", []v1alpha1.Route{{Domains: []string{"b.test"}}}, "spec.routes[0].host", "must not be empty"},
		{"bad host", []v1alpha1.Route{{Domains: []string{"b.test"}, Host: "mx.b.test:25"}}, "spec.routes[0].host", `character ':'`},
		{"host with zone", []v1alpha1.Route{{Domains: []string{"b.test"}, Host: "fe80::1%eth0"}}, "spec.routes[0].host", "zone"},
		{"bad port", []v1alpha1.Route{{Domains: []string{"b.test"}, Host: "h", Port: 65536}}, "spec.routes[0].port", "65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Resolve(routesObjects(tt.route...), plainHasher)
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 {
				t.Fatalf("err = %v, want one ObjectError", err)
			}
			e := errs[0]
			if e.Kind != "RelayPolicy" || e.Namespace != "mail" || e.Name != "routes" || e.Field != tt.field || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("error %+v, want RelayPolicy mail/routes field %s mentioning %q", e, tt.field, tt.msg)
			}
			if len(cfg.RelayPolicies) != 0 || len(cfg.Domains) != 1 {
				t.Errorf("config %+v: want the domain and no policy", cfg)
			}
		})
	}
}

// Routes are read from a manifest as `kubectl apply` would take them.
func TestRoutesFromManifest(t *testing.T) {
	policy := `---
apiVersion: mail.kubemail.io/v1alpha1
kind: RelayPolicy
metadata: {name: cluster}
spec:
  routes:
  - {domains: [b.example], host: kubemail-b.mail.svc.cluster.local, port: 2525}
`
	cfg, err := LoadManifests(writeManifests(t, map[string]string{"all.yaml": goodManifests + policy}), plainHasher)
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{{Domains: []string{"b.example"}, Host: "kubemail-b.mail.svc.cluster.local", Port: 2525}}
	if len(cfg.RelayPolicies) != 1 || !reflect.DeepEqual(cfg.RelayPolicies[0].Routes, want) {
		t.Errorf("policies = %+v, want routes %+v", cfg.RelayPolicies, want)
	}
}
