//go:build envtest

package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// TestCRDValidation checks that the API server itself rejects bad objects with a message that
// names the field, as `kubectl apply` would show it.
func TestCRDValidation(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	longName := strings.Repeat("a", 53)
	for _, tc := range []struct {
		name string
		obj  client.Object
		want string // in the error
	}{
		{"domain with a space", mailDomain(ns, "bad-domain", "not a domain"), "spec.domain"},
		{"domain without a dot", mailDomain(ns, "bad-domain2", "localhost"), "spec.domain"},
		{"name too long for the StatefulSet", mailDomain(ns, longName, "long.test"), "52 characters"},
		{"address without @", mailbox(ns, "bad-address", "alice.example.test", "pw"), "spec.address"},
		{"address with a slash", mailbox(ns, "bad-address2", "a/b@example.test", "pw"), "spec.address"},
		{"bad alias", mailbox(ns, "bad-alias", "alice@example.test", "pw", "postmaster"), "spec.aliases"},
		{"missing secret key", &v1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-key"},
			Spec: v1alpha1.MailboxSpec{Address: "a@example.test", PasswordSecretRef: v1alpha1.SecretKeySelector{Name: "pw"}}},
			"spec.passwordSecretRef.key"},
		{"trusted network not a CIDR", &v1alpha1.RelayPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-cidr"},
			Spec: v1alpha1.RelayPolicySpec{TrustedNetworks: []string{"10.0.0.0/8", "10.0.0.0/33"}}}, "trustedNetworks"},
		{"route without domains", routePolicy(ns, "no-route-domains", v1alpha1.Route{Host: "relay.example"}), "spec.routes[0].domains"},
		{"route without host", routePolicy(ns, "no-route-host", v1alpha1.Route{Domains: []string{"b.example"}}), "spec.routes[0].host"},
		{"route port out of range", routePolicy(ns, "bad-route-port", v1alpha1.Route{Domains: []string{"b.example"}, Host: "h", Port: 65536}), "spec.routes[0].port"},
		{"route domain not a domain", routePolicy(ns, "bad-route-domain", v1alpha1.Route{Domains: []string{"b example"}, Host: "h"}), "spec.routes[0].domains[0]"},
		{"the operator's policy name", routePolicy(ns, "kubemail-cluster-routes", v1alpha1.Route{Domains: []string{"b.example"}, Host: "h"}), "reserved"},
		{"ClusterIP with externalTrafficPolicy", &v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-svc"},
			Spec: v1alpha1.MailDomainSpec{Domain: "svc.test", Service: &v1alpha1.ServiceSpec{ExternalTrafficPolicy: "Local"}}},
			"externalTrafficPolicy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := k8s.Create(ctx, tc.obj)
			if err == nil {
				t.Fatalf("the API server accepted %s", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}

	// Valid spellings the standalone server accepts are accepted too.
	must(t, k8s.Create(ctx, mailDomain(ns, "upper", "Upper.Example.TEST.")))
	must(t, k8s.Create(ctx, mailbox(ns, "odd-but-fine", "o'brien.x_y@upper.example.test", "pw", "{team}@upper.example.test")))

	// spec.domain and spec.address cannot change. (Merge patches, as kubectl sends: an update
	// could race with the operator's status writes and fail for that reason instead.)
	md := &v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upper"}}
	mb := &v1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "odd-but-fine"}}
	for _, tc := range []struct {
		what  string
		obj   client.Object
		patch string
		want  string
	}{
		{"changing spec.domain", md, `{"spec":{"domain":"other.test"}}`, "immutable"},
		{"changing spec.address", mb, `{"spec":{"address":"someone.else@upper.example.test"}}`, "immutable"},
		// Volumes are fixed at creation: the StatefulSet's claims cannot change.
		{"adding spec.storage", md, `{"spec":{"storage":{"size":"5Gi"}}}`, "spec.storage"},
	} {
		if err := mergePatch(tc.obj, tc.patch); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one saying %q", tc.what, err, tc.want)
		}
	}
	size := resource.MustParse("5Gi")
	sized := mailDomain(ns, "sized", "sized.test")
	sized.Spec.Storage = &v1alpha1.StorageSpec{Size: &size}
	must(t, k8s.Create(ctx, sized))
	if sized.Spec.Storage.WhenDeleted != "Retain" {
		t.Errorf("spec.storage.whenDeleted defaulted to %q, want Retain", sized.Spec.Storage.WhenDeleted)
	}
	if err := mergePatch(sized, `{"spec":{"storage":{"size":"10Gi"}}}`); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("resizing spec.storage: err = %v, want immutable", err)
	}

	// Other fields still can.
	must(t, mergePatch(mb, `{"spec":{"aliases":["{team}@upper.example.test","more@upper.example.test"]}}`))

	// A route's port defaults to SMTP's.
	rp := routePolicy(ns, "route", v1alpha1.Route{Domains: []string{"b.example"}, Host: "kubemail-b.mail.svc.cluster.local"})
	must(t, k8s.Create(ctx, rp))
	if got := rp.Spec.Routes[0].Port; got != 25 {
		t.Errorf("spec.routes[0].port defaulted to %d, want 25", got)
	}
}

func routePolicy(ns, name string, routes ...v1alpha1.Route) *v1alpha1.RelayPolicy {
	return &v1alpha1.RelayPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.RelayPolicySpec{Routes: routes}}
}

// mergePatch sends a JSON merge patch of obj, as `kubectl patch --type merge` does.
func mergePatch(obj client.Object, patch string) error {
	return k8s.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, []byte(patch)))
}

// TestRemovedServiceAnnotationLeavesTheService edits spec.service.annotations: an annotation
// taken out of the spec is taken off the Service, and others' annotations stay.
func TestRemovedServiceAnnotationLeavesTheService(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	md := mailDomain(ns, "annotated", "annotated.test")
	md.Spec.Service = &v1alpha1.ServiceSpec{Annotations: map[string]string{"lb.example/a": "1", "lb.example/b": "2"}}
	must(t, k8s.Create(ctx, md))
	svc := &corev1.Service{}
	eventually(t, "the Service has both annotations", func() error {
		if err := get(ns, "annotated", svc); err != nil {
			return err
		}
		if svc.Annotations["lb.example/a"] != "1" || svc.Annotations["lb.example/b"] != "2" {
			return fmt.Errorf("annotations %v", svc.Annotations)
		}
		return nil
	})
	// Someone else's annotation, which the operator must leave alone.
	must(t, mergePatch(svc, `{"metadata":{"annotations":{"team.example/owner":"ops"}}}`))
	must(t, mergePatch(md, `{"spec":{"service":{"annotations":{"lb.example/b":null}}}}`)) // only a removal
	eventually(t, "the Service follows the spec's annotations", func() error {
		if err := get(ns, "annotated", svc); err != nil {
			return err
		}
		if _, ok := svc.Annotations["lb.example/b"]; ok || svc.Annotations["lb.example/a"] != "1" || svc.Annotations["team.example/owner"] != "ops" {
			return fmt.Errorf("annotations %v", svc.Annotations)
		}
		return nil
	})
}
