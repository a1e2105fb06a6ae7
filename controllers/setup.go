package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
)

// Options configure the reconcilers.
type Options struct {
	// Builder is passed to the builders: Builder.Image is the mail server image of MailDomains
	// that name none (the operator's own).
	Builder kmbuilder.Options
	// DNSCheck configures the check of each MailDomain's DNS records; off when zero.
	DNSCheck DNSCheckOptions
}

// Setup registers the field indexes and every reconciler with mgr, with the DNS check off.
// opts.Image is the mail server image of MailDomains that name none (the operator's own).
func Setup(ctx context.Context, mgr ctrl.Manager, opts kmbuilder.Options) error {
	return SetupWithOptions(ctx, mgr, Options{Builder: opts})
}

// SetupWithOptions registers the field indexes and every reconciler with mgr.
func SetupWithOptions(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	domains := &MailDomainReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("kubemail-operator"),
		Options:  opts.Builder,
		DNSCheck: opts.DNSCheck,
	}
	if err := domains.SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&MailboxReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("kubemail-operator")}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&MailGroupReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("kubemail-operator")}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&RelayPolicyReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)
}
