package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// domainsOfMailbox maps a Mailbox to the MailDomains serving its address's domain.
func (r *MailDomainReconciler) domainsOfMailbox(ctx context.Context, obj client.Object) []reconcile.Request {
	mb := obj.(*v1alpha1.Mailbox)
	return r.domainsNamed(ctx, mb.Namespace, mailboxDomain(mb))
}

// domainsOfSecret maps a Secret to the MailDomains whose certificate it holds, to those of the
// Mailboxes whose password it holds, and to those of the RelayPolicies that log in with it.
func (r *MailDomainReconciler) domainsOfSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	s := obj.(*corev1.Secret)
	var reqs []reconcile.Request
	var policies v1alpha1.RelayPolicyList
	if err := r.List(ctx, &policies, client.InNamespace(s.Namespace), client.MatchingFields{indexRelayPolicySecret: s.Name}); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list the RelayPolicies of a Secret", "secret", client.ObjectKeyFromObject(s))
	}
	for i := range policies.Items {
		reqs = append(reqs, r.domainsOfPolicy(ctx, &policies.Items[i])...)
	}
	var tlsUsers v1alpha1.MailDomainList
	if err := r.List(ctx, &tlsUsers, client.InNamespace(s.Namespace), client.MatchingFields{indexMailDomainTLSSecret: s.Name}); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list the MailDomains of a TLS Secret", "secret", client.ObjectKeyFromObject(s))
	}
	for _, md := range tlsUsers.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: md.Namespace, Name: md.Name}})
	}
	var mailboxes v1alpha1.MailboxList
	if err := r.List(ctx, &mailboxes, client.InNamespace(s.Namespace), client.MatchingFields{indexMailboxSecret: s.Name}); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list the Mailboxes of a Secret", "secret", client.ObjectKeyFromObject(s))
		return reqs
	}
	domains := map[string]bool{}
	for i := range mailboxes.Items {
		d := mailboxDomain(&mailboxes.Items[i])
		if !domains[d] {
			domains[d] = true
			reqs = append(reqs, r.domainsNamed(ctx, s.Namespace, d)...)
		}
	}
	return reqs
}

// domainsOfPolicy maps a RelayPolicy to the MailDomains it selects (all in its namespace when
// it lists none).
func (r *MailDomainReconciler) domainsOfPolicy(ctx context.Context, obj client.Object) []reconcile.Request {
	rp := obj.(*v1alpha1.RelayPolicy)
	if len(rp.Spec.Domains) == 0 {
		return r.domainsNamed(ctx, rp.Namespace, "")
	}
	var reqs []reconcile.Request
	for _, d := range rp.Spec.Domains {
		reqs = append(reqs, r.domainsNamed(ctx, rp.Namespace, normalDomain(d))...)
	}
	return reqs
}

// domainsNamed lists the MailDomains in ns serving domain, or all of ns's when domain is "".
func (r *MailDomainReconciler) domainsNamed(ctx context.Context, ns, domain string) []reconcile.Request {
	opts := []client.ListOption{client.InNamespace(ns)}
	if domain != "" {
		opts = append(opts, client.MatchingFields{indexMailDomainDomain: domain})
	}
	var list v1alpha1.MailDomainList
	if err := r.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list MailDomains", "namespace", ns, "domain", domain)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, md := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: md.Namespace, Name: md.Name}})
	}
	return reqs
}

// otherDomains maps a MailDomain to every other MailDomain, whose config has a route to it.
func (r *MailDomainReconciler) otherDomains(ctx context.Context, obj client.Object) []reconcile.Request {
	var list v1alpha1.MailDomainList
	if err := r.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list MailDomains")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, md := range list.Items {
		if md.Namespace != obj.GetNamespace() || md.Name != obj.GetName() {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: md.Namespace, Name: md.Name}})
		}
	}
	return reqs
}

// domainCameOrWent passes what changes the routes to a MailDomain: its creation and deletion,
// the start of its deletion, and a change of spec.domain (immutable in the CRD, but cheap to
// follow). Status writes and other edits do not touch the other domains' configs.
var domainCameOrWent = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		before, ok1 := e.ObjectOld.(*v1alpha1.MailDomain)
		after, ok2 := e.ObjectNew.(*v1alpha1.MailDomain)
		if !ok1 || !ok2 {
			return false
		}
		return normalDomain(before.Spec.Domain) != normalDomain(after.Spec.Domain) ||
			before.DeletionTimestamp.IsZero() != after.DeletionTimestamp.IsZero()
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}
