//go:build envtest

package envtest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/mailserver/config"
)

// userPolicies are the RelayPolicies of a server's config less the operator's cluster routes.
func userPolicies(cfg *config.Config) []config.RelayPolicy {
	var out []config.RelayPolicy
	for _, p := range cfg.RelayPolicies {
		if p.Name != builder.ClusterRoutesPolicy {
			out = append(out, p)
		}
	}
	return out
}

// clusterRoute is the route the named domain's server has for domain, nil if none.
func clusterRoute(t *testing.T, ns, name, domain string) (*config.Route, error) {
	dir, err := serverDirectory(t, ns, name)
	if err != nil {
		return nil, err
	}
	for _, p := range dir.Config().RelayPolicies {
		if p.Name != builder.ClusterRoutesPolicy {
			continue
		}
		for _, rt := range p.Routes {
			if slices.Contains(rt.Domains, domain) {
				return &rt, nil
			}
		}
	}
	return nil, nil
}

// TestMailDomainsRouteToEachOther creates two MailDomains in two namespaces: each server's
// config routes the other's domain to the other's client Service, so mail between them stays
// in the cluster; deleting one takes its route out of the other's config.
func TestMailDomainsRouteToEachOther(t *testing.T) {
	ctx := context.Background()
	nsA, nsB := newNamespace(t), newNamespace(t)
	// Domains unique to this test: the API server keeps every earlier test's MailDomains.
	domainA, domainB := nsA+"-a.test", nsB+"-b.test"
	must(t, k8s.Create(ctx, mailDomain(nsA, "alpha", domainA)))
	must(t, k8s.Create(ctx, mailDomain(nsB, "beta", domainB)))

	for _, c := range []struct{ ns, name, other, host string }{
		{nsA, "alpha", domainB, "beta." + nsB + ".svc"},
		{nsB, "beta", domainA, "alpha." + nsA + ".svc"},
	} {
		eventually(t, fmt.Sprintf("%s routes %s to %s", c.name, c.other, c.host), func() error {
			rt, err := clusterRoute(t, c.ns, c.name, c.other)
			if err != nil {
				return err
			}
			if rt == nil || rt.Host != c.host || rt.Port != 25 || len(rt.Domains) != 1 {
				return fmt.Errorf("route %+v, want %s to %s:25", rt, c.other, c.host)
			}
			return nil
		})
	}
	// A server never routes its own domain.
	if rt, err := clusterRoute(t, nsA, "alpha", domainA); err != nil || rt != nil {
		t.Errorf("alpha routes its own domain: %+v %v", rt, err)
	}

	must(t, k8s.Delete(ctx, &v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: "beta"}}))
	eventually(t, "beta's route leaves alpha's config", func() error {
		rt, err := clusterRoute(t, nsA, "alpha", domainB)
		if err != nil {
			return err
		}
		if rt != nil {
			return fmt.Errorf("alpha still routes %s: %+v", domainB, rt)
		}
		return nil
	})
}
