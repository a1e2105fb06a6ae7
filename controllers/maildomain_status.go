package controllers

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemail/kubemail/api/v1alpha1"
	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/mailserver/config"
)

// Reasons of MailDomain conditions besides "<Phase>Failed", "InvalidSpec" and "NameConflict".
const (
	ReasonAvailable         = "Available"
	ReasonPodsNotReady      = "PodsNotReady"
	ReasonAsExpected        = "AsExpected"
	ReasonMailboxesRejected = "MailboxesRejected"
)

// domainStatus is the status after all phases succeeded: Ready once the StatefulSet's pods run
// the current spec, Degraded while some Mailboxes or RelayPolicies are left out of the config.
func domainStatus(st *domainState) v1alpha1.MailDomainStatus {
	md := st.md
	status := *md.Status.DeepCopy()
	status.ObservedGeneration = md.Generation
	status.Mailboxes = int32(len(st.config.server.Mailboxes))
	var external []string
	if svc := st.svc; svc != nil && svc.UID != "" {
		status.Service = &v1alpha1.ServiceAddress{
			Name:           svc.Name,
			ClusterDNSName: fmt.Sprintf("%s.%s.svc", svc.Name, svc.Namespace),
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				external = append(external, in.IP)
			} else if in.Hostname != "" {
				external = append(external, in.Hostname)
			}
		}
		status.Service.ExternalAddresses = external
	}
	status.DNSRecords = kmbuilder.DNSRecords(md, st.dkim, external)
	ready, progress := metav1.ConditionFalse, metav1.ConditionTrue
	reason, msg := ReasonPodsNotReady, "The mail server has not started yet."
	if s := st.sts; s != nil && s.UID != "" {
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		msg = fmt.Sprintf("%d of %d mail server pods are ready with the current spec.", min(s.Status.ReadyReplicas, s.Status.UpdatedReplicas), want)
		if s.Status.ObservedGeneration >= s.Generation && s.Status.ReadyReplicas >= want && s.Status.UpdatedReplicas >= want {
			ready, progress, reason = metav1.ConditionTrue, metav1.ConditionFalse, ReasonAvailable
			msg = fmt.Sprintf("The mail server serves %s with %d Mailboxes.", md.Spec.Domain, status.Mailboxes)
		}
	}
	set(&status.Conditions, md, v1alpha1.ConditionReady, ready, reason, msg)
	set(&status.Conditions, md, v1alpha1.ConditionProgressing, progress, reason, msg)
	if rej := st.config.rejected; len(rej) > 0 {
		set(&status.Conditions, md, v1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonMailboxesRejected,
			fmt.Sprintf("%d objects are left out of the config: %s", len(rej), summarize(rej)))
	} else {
		set(&status.Conditions, md, v1alpha1.ConditionDegraded, metav1.ConditionFalse, ReasonAsExpected, "Every Mailbox and RelayPolicy of the domain is in the config.")
	}
	return status
}

// failedStatus is the status after a phase failed with err. The operator retries what may pass
// by itself (retrying: Progressing stays True); the rest waits for the user's fix.
func failedStatus(md *v1alpha1.MailDomain, reason string, err error, retrying bool) v1alpha1.MailDomainStatus {
	status := *md.Status.DeepCopy()
	status.ObservedGeneration = md.Generation
	msg := err.Error()
	set(&status.Conditions, md, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	set(&status.Conditions, md, v1alpha1.ConditionDegraded, metav1.ConditionTrue, reason, msg)
	if retrying {
		set(&status.Conditions, md, v1alpha1.ConditionProgressing, metav1.ConditionTrue, reason, "Retrying with backoff.")
	} else {
		set(&status.Conditions, md, v1alpha1.ConditionProgressing, metav1.ConditionFalse, reason, "Waiting for the problem to be fixed.")
	}
	return status
}

func set(conds *[]metav1.Condition, obj metav1.Object, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: obj.GetGeneration(),
	})
}

func summarize(errs []*config.ObjectError) string {
	const max = 3
	var parts []string
	for i, e := range errs {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(errs)-max))
			break
		}
		parts = append(parts, e.Error())
	}
	return strings.Join(parts, "; ")
}

// writeStatus patches md's status to status unless it is already that: no write in a steady state.
func (r *MailDomainReconciler) writeStatus(ctx context.Context, md *v1alpha1.MailDomain, status v1alpha1.MailDomainStatus) error {
	return replaceStatus(ctx, r.Client, nil, md, &md.Status, status, nil, nil)
}

// patchStatus applies mutate to obj and, if it changed something, merge-patches the status
// subresource with the difference.
func patchStatus[T client.Object](ctx context.Context, c client.Client, obj T, mutate func() bool) error {
	before := obj.DeepCopyObject().(T)
	if !mutate() {
		return nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	return nil
}
