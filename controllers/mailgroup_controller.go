package controllers

import (
	"context"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/mailserver/config"
)

// MailGroupReconciler reports each MailGroup's status; the MailDomainReconciler renders the
// groups of its domain into the mail server's objects.yaml. Ready is True when a MailDomain in
// the group's namespace serves its address's domain and config.Resolve takes the group with the
// domain's Mailboxes and groups; False with reason DomainNotFound or Rejected (the field and the
// problem in the message) otherwise. MailDomains and Mailboxes are watched, so a group whose
// domain or member appears recovers by itself.
type MailGroupReconciler struct {
	client.Client
	// Recorder emits the Events of Ready transitions (nil: none).
	Recorder events.EventRecorder
}

// Reconcile computes the MailGroup's conditions and writes them if they changed.
func (r *MailGroupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &v1alpha1.MailGroup{}
	if err := r.Get(ctx, req.NamespacedName, g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !g.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	reason, msg, err := r.check(ctx, g)
	if err != nil {
		return ctrl.Result{}, err
	}
	status := *g.Status.DeepCopy()
	status.ObservedGeneration = g.Generation
	status.Members = int32(len(g.Spec.Members))
	setReadiness(&status.Conditions, g, reason, msg, ReasonActive, "", false)
	return ctrl.Result{}, replaceStatus(ctx, r.Client, r.Recorder, g, &g.Status, status, g.Status.Conditions, status.Conditions)
}

// check returns the reason and message of the group's Ready condition.
func (r *MailGroupReconciler) check(ctx context.Context, g *v1alpha1.MailGroup) (reason, msg string, err error) {
	ns, domain := g.Namespace, mailGroupDomain(g)
	domains, err := servingDomains(ctx, r.Client, ns, domain)
	if err != nil {
		return "", "", err
	}
	if len(domains) == 0 {
		return ReasonDomainNotFound, domainNotFound(ns, g.Spec.Address, domain), nil
	}
	e, expanded, err := r.resolve(ctx, g, domains, domain)
	if err != nil {
		return "", "", err
	}
	if e != nil {
		return ReasonRejected, e.Field + ": " + e.Message, nil
	}
	sort.Slice(domains, func(i, j int) bool { return domains[i].Name < domains[j].Name })
	return ReasonActive, fmt.Sprintf("%s delivers to %d addresses on MailDomain %s.", g.Spec.Address, expanded, domains[0].Name), nil
}

// resolve runs config.Resolve over the domain's objects (resolveObjects) and returns g's
// problem, or the number of addresses it expands to.
func (r *MailGroupReconciler) resolve(ctx context.Context, g *v1alpha1.MailGroup, domains []v1alpha1.MailDomain, domain string) (*config.ObjectError, int, error) {
	unchecked := func(_, _ string) (string, error) { return "unchecked", nil }
	cfg, errs, err := resolveObjects(ctx, r.Client, g.Namespace, domain, domains, true, unchecked)
	if err != nil {
		return nil, 0, err
	}
	if e := problemOf(errs, "MailGroup", g); e != nil {
		return e, 0, nil
	}
	local, d, _ := config.SplitAddress(g.Spec.Address)
	for _, rg := range cfg.Groups {
		if rg.Address == local+"@"+d {
			return nil, len(rg.Expanded), nil
		}
	}
	return nil, 0, nil
}

// SetupWithManager watches MailGroups, the MailDomains that serve them and the Mailboxes their
// members may be.
func (r *MailGroupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.MailGroup{}, builder.WithPredicates(specOrMetadataChanged)).
		Watches(&v1alpha1.MailDomain{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.groupsOf(ctx, o.GetNamespace(), normalDomain(o.(*v1alpha1.MailDomain).Spec.Domain))
		})).
		Watches(&v1alpha1.Mailbox{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.groupsOf(ctx, o.GetNamespace(), mailboxDomain(o.(*v1alpha1.Mailbox)))
		})).
		Named("mailgroup").
		Complete(r)
}

func (r *MailGroupReconciler) groupsOf(ctx context.Context, ns, domain string) []reconcile.Request {
	if domain == "" {
		return nil
	}
	var list v1alpha1.MailGroupList
	if err := r.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexMailGroupDomain: domain}); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list MailGroups", "namespace", ns, "domain", domain)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, g := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: g.Namespace, Name: g.Name}})
	}
	return reqs
}

// domainsOfGroup maps a MailGroup to the MailDomains serving its address's domain, whose
// objects.yaml renders it.
func (r *MailDomainReconciler) domainsOfGroup(ctx context.Context, obj client.Object) []reconcile.Request {
	g := obj.(*v1alpha1.MailGroup)
	return r.domainsNamed(ctx, g.Namespace, mailGroupDomain(g))
}

// mailGroupDomain is the domain part of a MailGroup's address ("" if it has none).
func mailGroupDomain(g *v1alpha1.MailGroup) string {
	_, domain, ok := config.SplitAddress(g.Spec.Address)
	if !ok {
		return ""
	}
	return domain
}

// liveGroups leaves out the MailGroups being deleted: they leave the config at once.
func liveGroups(all []v1alpha1.MailGroup) []v1alpha1.MailGroup {
	var live []v1alpha1.MailGroup
	for _, g := range all {
		if g.DeletionTimestamp.IsZero() {
			live = append(live, g)
		}
	}
	return live
}
