package controllers

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
