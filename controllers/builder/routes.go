package builder

import (
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// ClusterRoutesPolicy is the name of the RelayPolicy the operator adds to each domain's
// objects.yaml with a route to every other MailDomain in the cluster. The CRD reserves the
// name, so no RelayPolicy of a user can take it.
const ClusterRoutesPolicy = "kubemail-cluster-routes"

// ClientServiceHost is the cluster DNS name of md's client Service, e.g. "example-test.mail.svc",
// which the pods' resolvers complete with the cluster domain through their search path.
func ClientServiceHost(md *v1alpha1.MailDomain) string {
	return ClientServiceName(md) + "." + md.Namespace + ".svc"
}

// smtpServicePort is the client Service's SMTP port, which other mail servers connect to.
func smtpServicePort() int32 { return mailPorts[0].port }

// clusterRoutes renders the RelayPolicy that keeps mail between the cluster's MailDomains in
// the cluster: one route per other MailDomain, for its domain, to its client Service on port
// 25 (delivered as to an MX host, with opportunistic STARTTLS). Left out are:
//   - our own domain, and a MailDomain being deleted;
//   - a domain that more than one MailDomain declares (two servers claim it: which one is
//     meant is not ours to guess, so its mail takes the MX path);
//   - a domain one of cfg.RelayPolicies routes: the user's explicit route wins.
//
// Routes are sorted by domain, so the same cluster always renders the same bytes. It returns
// nil when there is nothing to route.
func clusterRoutes(cfg ServerConfig) *v1alpha1.RelayPolicy {
	own := normalDomain(cfg.Domain.Spec.Domain)
	userRouted := map[string]bool{}
	for _, rp := range cfg.RelayPolicies {
		for _, rt := range rp.Spec.Routes {
			for _, d := range rt.Domains {
				userRouted[normalDomain(d)] = true
			}
		}
	}
	byDomain := map[string][]*v1alpha1.MailDomain{}
	for i := range cfg.ClusterDomains {
		md := &cfg.ClusterDomains[i]
		if md.Namespace == cfg.Domain.Namespace && md.Name == cfg.Domain.Name {
			continue
		}
		d := normalDomain(md.Spec.Domain)
		byDomain[d] = append(byDomain[d], md)
	}
	var routes []v1alpha1.Route
	for d, mds := range byDomain {
		if d == "" || d == own || len(mds) > 1 || userRouted[d] || !mds[0].DeletionTimestamp.IsZero() {
			continue
		}
		routes = append(routes, v1alpha1.Route{Domains: []string{d}, Host: ClientServiceHost(mds[0]), Port: smtpServicePort()})
	}
	if len(routes) == 0 {
		return nil
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].Domains[0] < routes[j].Domains[0] })
	return &v1alpha1.RelayPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: ClusterRoutesPolicy, Namespace: cfg.Domain.Namespace},
		Spec:       v1alpha1.RelayPolicySpec{Routes: routes},
	}
}

// normalDomain is a domain as mailserver/config compares it: lower case, no trailing dot.
func normalDomain(d string) string { return strings.ToLower(strings.TrimSuffix(d, ".")) }
