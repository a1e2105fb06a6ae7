package controllers

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/mailserver/config"
)

// resolveObjects runs config.Resolve over the MailDomains serving domain in namespace ns, the
// domain's live Mailboxes with the Secrets they reference and, with groups, its live
// MailGroups, as the MailDomainReconciler resolves them, with hash in place of hashing. It
// returns the config and the problems Resolve found with the objects; err is any other failure.
// The MailboxReconciler and MailGroupReconciler report their object's problem from it.
func resolveObjects(ctx context.Context, c client.Client, ns, domain string, domains []v1alpha1.MailDomain, groups bool, hash config.PasswordHasher) (*config.Config, config.Errors, error) {
	var mailboxes v1alpha1.MailboxList
	if err := c.List(ctx, &mailboxes, client.InNamespace(ns), client.MatchingFields{indexMailboxDomain: domain}); err != nil {
		return nil, nil, err
	}
	live, _ := splitDeleted(mailboxes.Items)
	objs := config.Objects{MailDomains: domains, Mailboxes: live}
	if groups {
		var list v1alpha1.MailGroupList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexMailGroupDomain: domain}); err != nil {
			return nil, nil, err
		}
		objs.MailGroups = liveGroups(list.Items)
	}
	seen := map[string]bool{}
	for _, m := range live {
		name := m.Spec.PasswordSecretRef.Name
		if seen[name] {
			continue
		}
		seen[name] = true
		var s corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: name}, &s); err == nil {
			objs.Secrets = append(objs.Secrets, s)
		} else if !apierrors.IsNotFound(err) {
			return nil, nil, err
		}
	}
	cfg, err := config.Resolve(objs, hash)
	var errs config.Errors
	if err != nil && !errors.As(err, &errs) {
		return nil, nil, err
	}
	return cfg, errs, nil
}

// problemOf is the problem in errs with the object obj of kind, or nil.
func problemOf(errs config.Errors, kind string, obj client.Object) *config.ObjectError {
	for _, e := range errs {
		if e.Kind == kind && e.Name == obj.GetName() && e.Namespace == obj.GetNamespace() {
			return e
		}
	}
	return nil
}

// setReadiness sets obj's Ready, Progressing (only with progressing) and Degraded conditions,
// in that order, all with reason and msg: Ready is True when reason is ok, Progressing when it
// is pending (never when pending is ""), Degraded otherwise.
func setReadiness(conds *[]metav1.Condition, obj metav1.Object, reason, msg, ok, pending string, progressing bool) {
	status := func(b bool) metav1.ConditionStatus {
		if b {
			return metav1.ConditionTrue
		}
		return metav1.ConditionFalse
	}
	isPending := pending != "" && reason == pending
	set(conds, obj, v1alpha1.ConditionReady, status(reason == ok), reason, msg)
	if progressing {
		set(conds, obj, v1alpha1.ConditionProgressing, status(isPending), reason, msg)
	}
	set(conds, obj, v1alpha1.ConditionDegraded, status(reason != ok && !isPending), reason, msg)
}

// replaceStatus patches obj's status, which cur points to, to next unless it is already that (no
// write in a steady state), emitting the Events of the condition transitions from before to
// after (recordTransitions; a nil rec emits none).
func replaceStatus[T client.Object, S any](ctx context.Context, c client.Client, rec events.EventRecorder, obj T, cur *S, next S, before, after []metav1.Condition) error {
	return patchStatus(ctx, c, obj, func() bool {
		if equality.Semantic.DeepEqual(*cur, next) {
			return false
		}
		recordTransitions(rec, obj, before, after)
		*cur = next
		return true
	})
}
