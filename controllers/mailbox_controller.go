package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubemail/kubemail/api/v1alpha1"
	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/config"
)

// Reasons of a Mailbox's Ready condition.
const (
	ReasonActive            = "Active"
	ReasonPending           = "Pending"
	ReasonDomainNotFound    = "DomainNotFound"
	ReasonSecretNotFound    = "SecretNotFound"
	ReasonSecretKeyNotFound = "SecretKeyNotFound"
	ReasonRejected          = "Rejected"
)

// MailboxReconciler reports each Mailbox's status; the MailDomainReconciler puts Mailboxes into
// the mail server's config. A Mailbox whose domain or Secret is missing says so, and recovers by
// itself when they appear: Secrets and MailDomains are watched.
type MailboxReconciler struct {
	client.Client
	// Recorder emits the Events of Ready and Degraded transitions (nil: none).
	Recorder events.EventRecorder
}

// Reconcile computes the Mailbox's conditions and writes them if they changed.
func (r *MailboxReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mb := &v1alpha1.Mailbox{}
	if err := r.Get(ctx, req.NamespacedName, mb); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if done, err := r.reconcileFinalizer(ctx, mb); done || err != nil {
		return ctrl.Result{}, err
	}
	reason, msg, err := r.check(ctx, mb)
	if err != nil {
		return ctrl.Result{}, err
	}
	status := *mb.Status.DeepCopy()
	status.ObservedGeneration = mb.Generation
	setReadiness(&status.Conditions, mb, reason, msg, ReasonActive, ReasonPending, true)
	return ctrl.Result{}, replaceStatus(ctx, r.Client, r.Recorder, mb, &mb.Status, status, mb.Status.Conditions, status.Conditions)
}

// check returns the reason and message of the Mailbox's Ready condition.
func (r *MailboxReconciler) check(ctx context.Context, mb *v1alpha1.Mailbox) (reason, msg string, err error) {
	ns, domain := mb.Namespace, mailboxDomain(mb)
	domains, err := servingDomains(ctx, r.Client, ns, domain)
	if err != nil {
		return "", "", err
	}
	if len(domains) == 0 {
		return ReasonDomainNotFound, domainNotFound(ns, mb.Spec.Address, domain), nil
	}
	ref := mb.Spec.PasswordSecretRef
	var secret corev1.Secret
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, &secret); apierrors.IsNotFound(err) {
		return ReasonSecretNotFound, fmt.Sprintf("Secret %s/%s is not found: create it with the password in key %q.", ns, ref.Name, ref.Key), nil
	} else if err != nil {
		return "", "", err
	}
	if _, ok := secret.Data[ref.Key]; !ok {
		return ReasonSecretKeyNotFound, fmt.Sprintf("Secret %s/%s has no key %q: put the password there.", ns, ref.Name, ref.Key), nil
	}
	// Everything else (empty passwords, malformed hashes, an address another Mailbox has)
	// is what Resolve finds, over the domain's Mailboxes as the MailDomain resolves them.
	if e, err := r.resolveProblem(ctx, mb, domains, domain); err != nil || e != nil {
		if e != nil {
			return ReasonRejected, e.Field + ": " + e.Message, nil
		}
		return "", "", err
	}
	sort.Slice(domains, func(i, j int) bool { return domains[i].Name < domains[j].Name })
	md := &domains[0] // Resolve lets the first by name serve a domain declared twice
	var hashes corev1.Secret
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: kmbuilder.SecretName(md)}, &hashes); client.IgnoreNotFound(err) != nil {
		return "", "", err
	}
	if _, ok := kmbuilder.PasswordHashes(&hashes)[mb.Name]; !ok {
		return ReasonPending, fmt.Sprintf("Waiting for MailDomain %s to add %s to its mail server.", md.Name, mb.Spec.Address), nil
	}
	return ReasonActive, fmt.Sprintf("%s receives mail and can log in on MailDomain %s.", mb.Spec.Address, md.Name), nil
}

// resolveProblem resolves the domain's Mailboxes (without hashing) and returns mb's problem.
func (r *MailboxReconciler) resolveProblem(ctx context.Context, mb *v1alpha1.Mailbox, domains []v1alpha1.MailDomain, domain string) (*config.ObjectError, error) {
	checkOnly := func(_, password string) (string, error) {
		if auth.IsHash(password) {
			if err := auth.CheckHash(password); err != nil {
				return "", fmt.Errorf("the Secret holds a malformed password hash: %w", err)
			}
		}
		return "unchecked", nil
	}
	_, errs, err := resolveObjects(ctx, r.Client, mb.Namespace, domain, domains, false, checkOnly)
	if err != nil {
		return nil, err
	}
	return problemOf(errs, "Mailbox", mb), nil
}

// SetupWithManager watches Mailboxes, the Secrets they reference, their MailDomains, and the
// MailDomains' password Secrets (which say whether a Mailbox is in the server's config).
func (r *MailboxReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Mailbox{}, builder.WithPredicates(specOrMetadataChanged)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.mailboxesOfSecret)).
		Watches(&v1alpha1.MailDomain{}, handler.EnqueueRequestsFromMapFunc(r.mailboxesOfDomain)).
		Named("mailbox").
		Complete(r)
}

func (r *MailboxReconciler) mailboxesOfSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	s := obj.(*corev1.Secret)
	if s.Labels[kmbuilder.LabelManagedBy] == kmbuilder.ManagedBy && strings.HasSuffix(s.Name, "-passwords") {
		var md v1alpha1.MailDomain
		if err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Labels[kmbuilder.LabelInstance]}, &md); err == nil {
			return r.mailboxesOfDomain(ctx, &md)
		}
		return nil
	}
	return r.mailboxes(ctx, s.Namespace, client.MatchingFields{indexMailboxSecret: s.Name})
}

func (r *MailboxReconciler) mailboxesOfDomain(ctx context.Context, obj client.Object) []reconcile.Request {
	md := obj.(*v1alpha1.MailDomain)
	return r.mailboxes(ctx, md.Namespace, client.MatchingFields{indexMailboxDomain: normalDomain(md.Spec.Domain)})
}

func (r *MailboxReconciler) mailboxes(ctx context.Context, ns string, match client.MatchingFields) []reconcile.Request {
	var list v1alpha1.MailboxList
	if err := r.List(ctx, &list, client.InNamespace(ns), match); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list Mailboxes", "namespace", ns)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, mb := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: mb.Namespace, Name: mb.Name}})
	}
	return reqs
}
