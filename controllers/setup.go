package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
)

// Setup registers the field indexes and every reconciler with mgr. opts.Image is the mail
// server image of MailDomains that name none (the operator's own).
func Setup(ctx context.Context, mgr ctrl.Manager, opts kmbuilder.Options) error {
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	domains := &MailDomainReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("kubemail-operator"),
		Options:  opts,
	}
	if err := domains.SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&MailboxReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("kubemail-operator")}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&RelayPolicyReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)
}
