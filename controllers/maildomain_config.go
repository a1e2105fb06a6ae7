package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/mailserver/config"
)

// domainConfig is a MailDomain's resolved server config and what was left out of it.
type domainConfig struct {
	server builder.ServerConfig
	// domainErr is the problem with the MailDomain itself, if any: nothing is rendered then.
	domainErr *config.ObjectError
	// rejected are the Mailboxes, MailGroups and RelayPolicies of the domain that Resolve left
	// out.
	rejected []*config.ObjectError
	// reclaimed are the deleted Mailboxes whose addresses server.Purge lists and whose
	// finalizer goes once the ConfigMap says so (MailboxFinalizer).
	reclaimed []v1alpha1.Mailbox
}

// resolveDomain gathers md's Mailboxes (those whose address is in md's domain, in md's
// namespace), the RelayPolicies that select it and the referenced Secrets, and resolves them
// with the same config.Resolve as the standalone server.
func (r *MailDomainReconciler) resolveDomain(ctx context.Context, md *v1alpha1.MailDomain) (*domainConfig, error) {
	ns, domain := md.Namespace, normalDomain(md.Spec.Domain)
	domains, err := servingDomains(ctx, r.Client, ns, domain)
	if err != nil {
		return nil, err
	}
	// The purge annotation on the API object has no effect: the operator writes the pod's.
	for i := range domains {
		delete(domains[i].Annotations, config.PurgeAnnotation)
	}
	var mailboxes v1alpha1.MailboxList
	if err := r.List(ctx, &mailboxes, client.InNamespace(ns), client.MatchingFields{indexMailboxDomain: domain}); err != nil {
		return nil, fmt.Errorf("listing Mailboxes: %w", err)
	}
	// A Mailbox being deleted is out of the config at once, whatever holds it back.
	var reclaimed []v1alpha1.Mailbox
	mailboxes.Items, reclaimed = splitDeleted(mailboxes.Items)
	purge, err := r.purgeAddresses(ctx, md, mailboxes.Items, reclaimed)
	if err != nil {
		return nil, err
	}
	var policies v1alpha1.RelayPolicyList
	if err := r.List(ctx, &policies, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing RelayPolicies: %w", err)
	}
	var groups v1alpha1.MailGroupList
	if err := r.List(ctx, &groups, client.InNamespace(ns), client.MatchingFields{indexMailGroupDomain: domain}); err != nil {
		return nil, fmt.Errorf("listing MailGroups: %w", err)
	}
	groups.Items = liveGroups(groups.Items)
	objs := config.Objects{MailDomains: domains, Mailboxes: mailboxes.Items, MailGroups: groups.Items}
	for _, rp := range policies.Items {
		if p, ok := policyFor(rp, domain); ok {
			objs.RelayPolicies = append(objs.RelayPolicies, p)
		}
	}
	// The Secrets the objects reference: Mailboxes' passwords, smarthosts' credentials.
	var refs []string
	for _, mb := range mailboxes.Items {
		refs = append(refs, mb.Spec.PasswordSecretRef.Name)
	}
	relayCreds := map[string]bool{}
	for _, rp := range objs.RelayPolicies {
		if name := smarthostSecret(&rp); name != "" {
			refs = append(refs, name)
			relayCreds[name] = true
		}
	}
	seen := map[string]bool{}
	var credentials []corev1.Secret
	for _, name := range refs {
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		var s corev1.Secret
		err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)
		if apierrors.IsNotFound(err) {
			continue // Resolve reports the object that references it
		}
		if err != nil {
			return nil, fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
		}
		objs.Secrets = append(objs.Secrets, s)
		if relayCreds[name] {
			credentials = append(credentials, s)
		}
	}
	var current corev1.Secret
	err = r.Get(ctx, client.ObjectKey{Namespace: ns, Name: builder.SecretName(md)}, &current)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", ns, builder.SecretName(md), err)
	}
	used := map[string]string{}
	domainKey := ns + "/" + domain
	_, err = config.Resolve(objs, r.hashes.hasher(domainKey, builder.PasswordHashes(&current), used))
	keep := map[string]bool{}
	for _, mb := range mailboxes.Items {
		keep[mb.Namespace+"/"+mb.Name] = true
	}
	r.hashes.prune(domainKey, keep)
	dc := &domainConfig{server: builder.ServerConfig{Domain: md, PasswordHashes: used, Purge: purge}, reclaimed: reclaimed}
	var objErrs config.Errors
	if err != nil && !errors.As(err, &objErrs) {
		return nil, err
	}
	rejected := map[string]bool{}
	for _, e := range objErrs {
		switch {
		case e.Kind == "MailDomain" && e.Name == md.Name:
			dc.domainErr = e
		case e.Kind == "Mailbox" || e.Kind == "RelayPolicy" || e.Kind == "MailGroup":
			rejected[e.Kind+"/"+e.Name] = true
			dc.rejected = append(dc.rejected, e)
		}
	}
	for _, mb := range mailboxes.Items {
		if !rejected["Mailbox/"+mb.Name] {
			dc.server.Mailboxes = append(dc.server.Mailboxes, mb)
		}
	}
	for _, g := range groups.Items {
		if !rejected["MailGroup/"+g.Name] {
			dc.server.MailGroups = append(dc.server.MailGroups, g)
		}
	}
	inUse := map[string]bool{}
	for _, rp := range objs.RelayPolicies {
		if !rejected["RelayPolicy/"+rp.Name] {
			dc.server.RelayPolicies = append(dc.server.RelayPolicies, rp)
			inUse[smarthostSecret(&rp)] = true
		}
	}
	for _, s := range credentials {
		if inUse[s.Name] {
			dc.server.RelayCredentials = append(dc.server.RelayCredentials, s)
		}
	}
	// Every MailDomain the operator watches, for the routes between them (builder.clusterRoutes).
	var cluster v1alpha1.MailDomainList
	if err := r.List(ctx, &cluster); err != nil {
		return nil, fmt.Errorf("listing the cluster's MailDomains: %w", err)
	}
	dc.server.ClusterDomains = cluster.Items
	sort.Slice(dc.rejected, func(i, j int) bool { return dc.rejected[i].Name < dc.rejected[j].Name })
	return dc, nil
}

// policyFor returns rp as it applies to domain: a policy for all domains as it is, a policy that
// lists domain narrowed to it (the other domains are other servers' business), ok=false if rp
// does not select domain. A route for domain itself is left out of domain's copy (a route that
// is left with no domain goes): a policy routing mail to one of the domains it selects is
// meant for the others' servers, and on domain's own server config.Resolve would refuse it.
func policyFor(rp v1alpha1.RelayPolicy, domain string) (v1alpha1.RelayPolicy, bool) {
	selected := len(rp.Spec.Domains) == 0
	for _, d := range rp.Spec.Domains {
		selected = selected || normalDomain(d) == domain
	}
	if !selected {
		return rp, false
	}
	p := *rp.DeepCopy()
	if len(p.Spec.Domains) > 0 {
		p.Spec.Domains = []string{domain}
	}
	var routes []v1alpha1.Route
	for _, rt := range p.Spec.Routes {
		var kept []string
		for _, d := range rt.Domains {
			if normalDomain(d) != domain {
				kept = append(kept, d)
			}
		}
		if len(kept) > 0 {
			rt.Domains = kept
			routes = append(routes, rt)
		}
	}
	p.Spec.Routes = routes
	return p, true
}

// smarthostSecret is the name of rp's smarthost credentials Secret, "" if it has none.
func smarthostSecret(rp *v1alpha1.RelayPolicy) string {
	if sh := rp.Spec.Smarthost; sh != nil && sh.CredentialsSecretRef != nil {
		return sh.CredentialsSecretRef.Name
	}
	return ""
}
