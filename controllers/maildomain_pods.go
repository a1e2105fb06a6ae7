package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
)

// ConfigHashAnnotation is set on each running pod of a MailDomain's mail server to the hash of
// the manifests its projected volume should hold (ConfigHash). Changing it is what makes the
// kubelet rewrite the volume at once instead of at its next periodic sync.
//
// Why a pod annotation: the kubelet rewrites ConfigMap, Secret and projected volumes only when it
// syncs the pod, and it syncs a running pod either every syncFrequency (1 min, plus up to 50%
// jitter: the 65-93 s measured in the real cluster) or when the pod object changes in a way
// kubelet/config podsDifferSemantically counts: spec, labels, deletion, or annotations (status
// changes only "reconcile", which mounts nothing). On such an update SyncPod re-registers the
// pod with the Secret and ConfigMap managers (under configMapAndSecretChangeDetectionStrategy
// Cache that drops the cached objects, so they are fetched again; under Watch, the default, the
// cache is fed by a watch and already holds the new objects; under Get they are fetched
// anyway), and WaitForAttachAndMount → ReprocessPod marks the pod's volumes for remount, which
// the volume manager's reconciler (100 ms loop) performs. So one annotation patch brings the new
// files into the pod within about a second under every strategy, where the server's reload
// (a 2 s poll) picks them up.
//
// The alternatives are worse: an annotation on the StatefulSet's pod template restarts every
// pod (connections cut, IMAP IDLE sessions lost) for what the server reloads live; a label would
// do it too, but labels are what Services and the StatefulSet select by; `kubectl exec` into the
// pod needs pods/exec and cannot write a read-only volume; making the server watch the API
// needs a token and RBAC in every mail pod. The patch is a JSON merge patch of this one key
// (no resourceVersion, so it never conflicts with the kubelet's status writes), made only when
// the value differs: a steady state makes no writes. The one race left is the kubelet's own:
// under the Watch strategy the pod update may reach the kubelet a moment before the ConfigMap
// or Secret update does (two watches); the periodic sync then still corrects it.
const ConfigHashAnnotation = "mail.kubemail.io/config-hash"

// ConfigHash is the hash of the files of the pod's manifests directory: objects.yaml from the
// ConfigMap and passwords.yaml from the Secret.
func ConfigHash(objects string, passwords []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", kmbuilder.ObjectsKey, len(objects))
	h.Write([]byte(objects))
	fmt.Fprintf(h, "\x00%s\x00%d\x00", kmbuilder.PasswordsKey, len(passwords))
	h.Write(passwords)
	return hex.EncodeToString(h.Sum(nil))
}

// mailServerPods selects the pods of every MailDomain's mail server (kmbuilder.Labels): the
// manager caches only these pods, not every pod of the cluster.
var mailServerPods = labels.SelectorFromSet(labels.Set{
	kmbuilder.LabelComponent: "mail-server",
	kmbuilder.LabelManagedBy: kmbuilder.ManagedBy,
})

// CacheOptions are the manager's cache options the reconcilers rely on: pods are watched only
// when they run a MailDomain's mail server. Pass them to ctrl.NewManager.
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}: {Label: mailServerPods},
	}}
}

// podsPhase sets ConfigHashAnnotation on the MailDomain's pods that do not carry the hash of the
// config just applied. The pods are those the client Service sends mail to: the ones with the
// StatefulSet's selector labels; pods being deleted are left alone.
func (r *MailDomainReconciler) podsPhase(ctx context.Context, st *domainState) error {
	hash := ConfigHash(st.objects, st.passwords)
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(st.md.Namespace), client.MatchingLabels(kmbuilder.SelectorLabels(st.md))); err != nil {
		return fmt.Errorf("listing the pods: %w", err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !pod.DeletionTimestamp.IsZero() || pod.Annotations[ConfigHashAnnotation] == hash {
			continue
		}
		patch := client.MergeFrom(pod.DeepCopy())
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[ConfigHashAnnotation] = hash
		if err := r.Patch(ctx, pod, patch); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("annotating pod %s: %w", pod.Name, err)
		}
		log.FromContext(ctx).V(1).Info("Told the kubelet to refresh the pod's config", "pod", pod.Name, "hash", hash)
	}
	return nil
}

// domainOfPod maps a mail server pod to its MailDomain, named by its instance label.
func domainOfPod(_ context.Context, obj client.Object) []reconcile.Request {
	name := obj.GetLabels()[kmbuilder.LabelInstance]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}}}
}

// podCreated passes only new pods: a pod the StatefulSet (re)creates while the config changes
// may have mounted the old one, and gets the annotation (and so the refresh) in the reconcile
// this starts. Pods' status updates, frequent and meaningless here, start nothing.
var podCreated = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return true },
	UpdateFunc:  func(event.UpdateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}
