//go:build envtest

package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
	"github.com/kubemail/kubemail/controllers/builder"
)

// mailPod creates a pod as the StatefulSet controller would (envtest has none): the pod
// template's labels, nothing else the operator looks at.
func mailPod(t *testing.T, md *v1alpha1.MailDomain, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: md.Namespace, Name: name, Labels: builder.Labels(md)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kubemail", Image: testImage}}},
	}
	must(t, k8s.Create(context.Background(), pod))
	return pod
}

// renderedHash is the hash of the manifests the MailDomain's ConfigMap and Secret hold now: what
// the pod's projected volume holds once the kubelet has refreshed it.
func renderedHash(ns string, md *v1alpha1.MailDomain) (string, string, error) {
	var cm corev1.ConfigMap
	var secret corev1.Secret
	if err := get(ns, builder.ConfigMapName(md), &cm); err != nil {
		return "", "", err
	}
	if err := get(ns, builder.SecretName(md), &secret); err != nil {
		return "", "", err
	}
	return controllers.ConfigHash(cm.Data[builder.ObjectsKey], secret.Data[builder.PasswordsKey]), cm.Data[builder.ObjectsKey], nil
}

// podHashIs waits until the pod's config-hash annotation is the hash of the rendered manifests
// and those satisfy cond; it returns the hash.
func podHashIs(t *testing.T, md *v1alpha1.MailDomain, pod string, what string, cond func(objects string) bool) string {
	t.Helper()
	var hash string
	eventually(t, what, func() error {
		h, objects, err := renderedHash(md.Namespace, md)
		if err != nil {
			return err
		}
		if !cond(objects) {
			return fmt.Errorf("the ConfigMap does not say so yet")
		}
		var p corev1.Pod
		if err := get(md.Namespace, pod, &p); err != nil {
			return err
		}
		if got := p.Annotations[controllers.ConfigHashAnnotation]; got != h {
			return fmt.Errorf("pod %s has %s=%q, want %q", pod, controllers.ConfigHashAnnotation, got, h)
		}
		hash = h
		return nil
	})
	return hash
}

// TestConfigChangeAnnotatesPods checks that a Mailbox change puts the new config's hash on the
// domain's running pods (the annotation makes the kubelet refresh their volumes at once), that a
// new pod gets it, that other domains' pods are left alone, and that a reconcile with no
// change does not touch the pods.
func TestConfigChangeAnnotatesPods(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	must(t, k8s.Create(ctx, mailDomain(ns, "pods-test", "pods.test")))
	must(t, k8s.Create(ctx, mailDomain(ns, "other-test", "other.test")))
	for _, name := range []string{"carol", "dave"} {
		must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-pw"},
			StringData: map[string]string{"password": name + "-password"}}))
	}
	must(t, k8s.Create(ctx, mailbox(ns, "carol", "carol@pods.test", "carol-pw")))
	mailboxReady(t, ns, "carol", metav1.ConditionTrue, controllers.ReasonActive)
	md, other := &v1alpha1.MailDomain{}, &v1alpha1.MailDomain{}
	must(t, get(ns, "pods-test", md))
	must(t, get(ns, "other-test", other))

	mailPod(t, md, "pods-test-0")
	otherPod := mailPod(t, other, "other-test-0")
	hasCarol := func(o string) bool { return strings.Contains(o, "carol@pods.test") }
	first := podHashIs(t, md, "pods-test-0", "a new pod gets the config hash", hasCarol)

	must(t, k8s.Create(ctx, mailbox(ns, "dave", "dave@pods.test", "dave-pw")))
	hasDave := func(o string) bool { return strings.Contains(o, "dave@pods.test") }
	withDave := podHashIs(t, md, "pods-test-0", "a new Mailbox changes the pod's config hash", hasDave)
	if withDave == first {
		t.Fatal("the hash did not change with the config")
	}

	must(t, k8s.Delete(ctx, &v1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dave"}}))
	// The same config as before dave: the same hash, so the hash follows content, not events.
	if h := podHashIs(t, md, "pods-test-0", "a deleted Mailbox changes the pod's config hash", func(o string) bool { return !hasDave(o) }); h != first {
		t.Errorf("config without dave hashes to %s, before dave it was %s", h, first)
	}

	// A reconcile with nothing changed leaves the pod alone.
	var before corev1.Pod
	must(t, get(ns, "pods-test-0", &before))
	n := reconciles(t, "maildomain")
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"touched":"yes"}}}`))
	must(t, k8s.Patch(ctx, &v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pods-test"}}, patch))
	eventually(t, "the MailDomain is reconciled", func() error {
		if reconciles(t, "maildomain") <= n {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	var after corev1.Pod
	must(t, get(ns, "pods-test-0", &after))
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a reconcile without a config change wrote the pod (resourceVersion %s → %s)", before.ResourceVersion, after.ResourceVersion)
	}

	// The other domain's pod carries its own domain's hash, untouched by these changes.
	h, _, err := renderedHash(ns, other)
	must(t, err)
	must(t, get(ns, otherPod.Name, otherPod))
	if got := otherPod.Annotations[controllers.ConfigHashAnnotation]; got != h {
		t.Errorf("other domain's pod has hash %q, want its own domain's %q", got, h)
	}
}
