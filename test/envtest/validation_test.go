//go:build envtest

package envtest

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

	// spec.domain and spec.address cannot change.
	md := &v1alpha1.MailDomain{}
	must(t, get(ns, "upper", md))
	md.Spec.Domain = "other.test"
	if err := k8s.Update(ctx, md); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("changing spec.domain: err = %v, want immutable", err)
	}
	mb := &v1alpha1.Mailbox{}
	must(t, get(ns, "odd-but-fine", mb))
	mb.Spec.Address = "someone.else@upper.example.test"
	if err := k8s.Update(ctx, mb); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("changing spec.address: err = %v, want immutable", err)
	}
	// Volumes are fixed at creation: the StatefulSet's claims cannot change.
	must(t, get(ns, "upper", md))
	size := resource.MustParse("5Gi")
	md.Spec.Storage = &v1alpha1.StorageSpec{Size: &size}
	if err := k8s.Update(ctx, md); err == nil || !strings.Contains(err.Error(), "spec.storage") {
		t.Errorf("adding spec.storage: err = %v, want it refused", err)
	}
	sized := mailDomain(ns, "sized", "sized.test")
	sized.Spec.Storage = &v1alpha1.StorageSpec{Size: &size}
	must(t, k8s.Create(ctx, sized))
	if sized.Spec.Storage.WhenDeleted != "Retain" {
		t.Errorf("spec.storage.whenDeleted defaulted to %q, want Retain", sized.Spec.Storage.WhenDeleted)
	}
	bigger := resource.MustParse("10Gi")
	sized.Spec.Storage.Size = &bigger
	if err := k8s.Update(ctx, sized); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("resizing spec.storage: err = %v, want immutable", err)
	}

	// Other fields still can.
	must(t, get(ns, "odd-but-fine", mb))
	mb.Spec.Aliases = append(mb.Spec.Aliases, "more@upper.example.test")
	must(t, k8s.Update(ctx, mb))
}
