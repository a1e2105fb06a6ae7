package controllers

import (
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// recordTransitions emits an Event when an object becomes Ready, stops being Ready, or becomes
// Degraded (a MailDomain leaving Mailboxes out, a Mailbox whose Secret is missing), and when a
// MailDomain's DNSPublished condition changes (a Warning unless it became True): the moments
// an administrator wants in `kubectl describe`. The reason is the condition's reason; nothing is
// emitted while the conditions stay as they were. A nil recorder records nothing.
func recordTransitions(rec events.EventRecorder, obj runtime.Object, before, after []metav1.Condition) {
	if rec == nil {
		return
	}
	changed := func(typ string) *metav1.Condition {
		now := meta.FindStatusCondition(after, typ)
		was := meta.FindStatusCondition(before, typ)
		if now == nil || was != nil && was.Status == now.Status && was.Reason == now.Reason {
			return nil
		}
		return now
	}
	ready := changed(v1alpha1.ConditionReady)
	if ready != nil {
		// Not Ready is a Warning when it was Ready or something is wrong (Degraded), and
		// Normal while it is on its way (Progressing, such as a pod starting).
		kind := corev1.EventTypeNormal
		if ready.Status != metav1.ConditionTrue && (meta.IsStatusConditionTrue(before, v1alpha1.ConditionReady) ||
			meta.IsStatusConditionTrue(after, v1alpha1.ConditionDegraded)) {
			kind = corev1.EventTypeWarning
		}
		rec.Eventf(obj, nil, kind, ready.Reason, "Reconcile", "%s", note(ready.Message))
	}
	if c := changed(v1alpha1.ConditionDegraded); c != nil && c.Status == metav1.ConditionTrue &&
		(ready == nil || ready.Reason != c.Reason) {
		rec.Eventf(obj, nil, corev1.EventTypeWarning, c.Reason, "Reconcile", "%s", note(c.Message))
	}
	if c := changed(v1alpha1.ConditionDNSPublished); c != nil {
		kind := corev1.EventTypeWarning
		if c.Status == metav1.ConditionTrue {
			kind = corev1.EventTypeNormal
		}
		rec.Eventf(obj, nil, kind, c.Reason, "CheckDNS", "%s", note(c.Message))
	}
}

// noteLimit is the most an Event's note may hold (the API server refuses longer ones).
const noteLimit = 1024

// note shortens a condition message (which may be up to 32 KiB) to fit an Event's note.
func note(msg string) string {
	if len(msg) <= noteLimit {
		return msg
	}
	const more = " (more in the condition)"
	cut := noteLimit - len(more)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + more
}
