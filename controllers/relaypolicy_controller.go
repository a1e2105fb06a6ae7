package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// Reasons of a RelayPolicy's Ready condition.
const (
	ReasonApplied      = "Applied"
	ReasonNoMailDomain = "NoMailDomain"
)

// RelayPolicyReconciler reports each RelayPolicy's status: which MailDomains' config it is in,
// and what is missing (a domain it names, its smarthost credentials). The MailDomainReconciler
// puts it into those configs.
type RelayPolicyReconciler struct {
	client.Client
}

// Reconcile computes the RelayPolicy's conditions and writes them if they changed.
func (r *RelayPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rp := &v1alpha1.RelayPolicy{}
	if err := r.Get(ctx, req.NamespacedName, rp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	reason, msg, err := r.check(ctx, rp)
	if err != nil {
		return ctrl.Result{}, err
	}
	status := *rp.Status.DeepCopy()
	status.ObservedGeneration = rp.Generation
	setReadiness(&status.Conditions, rp, reason, msg, ReasonApplied, "", true)
	return ctrl.Result{}, replaceStatus(ctx, r.Client, nil, rp, &rp.Status, status, nil, nil)
}

func (r *RelayPolicyReconciler) check(ctx context.Context, rp *v1alpha1.RelayPolicy) (reason, msg string, err error) {
	var list v1alpha1.MailDomainList
	if err := r.List(ctx, &list, client.InNamespace(rp.Namespace)); err != nil {
		return "", "", err
	}
	served := map[string]string{} // domain -> MailDomain name
	for _, md := range list.Items {
		served[normalDomain(md.Spec.Domain)] = md.Name
	}
	var in, missing []string
	if len(rp.Spec.Domains) == 0 {
		for _, name := range served {
			in = append(in, name)
		}
	} else {
		for _, d := range rp.Spec.Domains {
			if name, ok := served[normalDomain(d)]; ok {
				in = append(in, name)
			} else {
				missing = append(missing, d)
			}
		}
	}
	sort.Strings(in)
	if len(missing) > 0 {
		return ReasonDomainNotFound, fmt.Sprintf("No MailDomain in namespace %s serves %s; the policy applies to the others (%s).",
			rp.Namespace, strings.Join(missing, ", "), strings.Join(in, ", ")), nil
	}
	if len(in) == 0 {
		return ReasonNoMailDomain, fmt.Sprintf("There is no MailDomain in namespace %s to apply the policy to.", rp.Namespace), nil
	}
	if sh := rp.Spec.Smarthost; sh != nil && sh.CredentialsSecretRef != nil {
		var s corev1.Secret
		name := sh.CredentialsSecretRef.Name
		if err := r.Get(ctx, client.ObjectKey{Namespace: rp.Namespace, Name: name}, &s); apierrors.IsNotFound(err) {
			return ReasonSecretNotFound, fmt.Sprintf("Secret %s/%s of spec.smarthost.credentialsSecretRef is not found: create it with keys username and password.", rp.Namespace, name), nil
		} else if err != nil {
			return "", "", err
		}
		for _, key := range []string{"username", "password"} {
			if len(s.Data[key]) == 0 {
				return ReasonSecretKeyNotFound, fmt.Sprintf("Secret %s/%s of spec.smarthost.credentialsSecretRef has no %s.", rp.Namespace, name, key), nil
			}
		}
	}
	return ReasonApplied, fmt.Sprintf("In the config of MailDomain %s.", strings.Join(in, ", ")), nil
}

// SetupWithManager watches RelayPolicies, the MailDomains they select and their smarthost
// credentials Secrets.
func (r *RelayPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.RelayPolicy{}, builder.WithPredicates(specOrMetadataChanged)).
		Watches(&v1alpha1.MailDomain{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.policies(ctx, o.GetNamespace(), nil)
		}), builder.WithPredicates(specOrMetadataChanged)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.policies(ctx, o.GetNamespace(), client.MatchingFields{indexRelayPolicySecret: o.GetName()})
		})).
		Named("relaypolicy").
		Complete(r)
}

func (r *RelayPolicyReconciler) policies(ctx context.Context, ns string, match client.MatchingFields) []reconcile.Request {
	opts := []client.ListOption{client.InNamespace(ns)}
	if match != nil {
		opts = append(opts, match)
	}
	var list v1alpha1.RelayPolicyList
	if err := r.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list RelayPolicies", "namespace", ns)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, rp := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rp.Namespace, Name: rp.Name}})
	}
	return reqs
}
