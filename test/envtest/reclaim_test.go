//go:build envtest

package envtest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
)

func withPolicy(mb *v1alpha1.Mailbox, p v1alpha1.MailboxReclaimPolicy) *v1alpha1.Mailbox {
	mb.Spec.ReclaimPolicy = p
	return mb
}

// hasFinalizer waits until the Mailbox has the reclaim finalizer or not.
func hasFinalizer(t *testing.T, ns, name string, want bool) {
	t.Helper()
	eventually(t, fmt.Sprintf("Mailbox %s has the finalizer: %v", name, want), func() error {
		var mb v1alpha1.Mailbox
		if err := get(ns, name, &mb); err != nil {
			return err
		}
		if got := controllerutil.ContainsFinalizer(&mb, controllers.MailboxFinalizer); got != want {
			return fmt.Errorf("finalizers %v", mb.Finalizers)
		}
		return nil
	})
}

// deleted deletes the Mailbox and waits until it is gone from the API.
func deleted(t *testing.T, ns, name string) {
	t.Helper()
	must(t, k8s.Delete(context.Background(), &v1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}))
	eventually(t, "Mailbox "+name+" is gone", func() error {
		var mb v1alpha1.Mailbox
		if err := get(ns, name, &mb); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (finalizers %v): %v", mb.Finalizers, err)
		}
		return nil
	})
}

// serverState waits until the server's config, as loaded from the domain's ConfigMap and
// Secret, has exactly the mailboxes and the purge list given.
func serverState(t *testing.T, ns, domain, what string, mailboxes, purge []string) {
	t.Helper()
	eventually(t, what, func() error {
		cfg, err := serverConfig(t, ns, domain)
		if err != nil {
			return err
		}
		var got []string
		for _, mb := range cfg.Mailboxes {
			got = append(got, mb.Address)
		}
		if !reflect.DeepEqual(got, mailboxes) || !reflect.DeepEqual(cfg.Purge, purge) {
			return fmt.Errorf("mailboxes %q purge %q, want %q and %q", got, cfg.Purge, mailboxes, purge)
		}
		return nil
	})
}

// TestReclaimPolicyDelete deletes Mailboxes of both policies: a Delete one's address goes into
// the server's purge list before the Mailbox object goes, a Retain one's does not; a Mailbox
// re-created with the address takes it off the list.
func TestReclaimPolicyDelete(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	must(t, k8s.Create(ctx, mailDomain(ns, "reclaim-test", "reclaim.test")))
	for _, name := range []string{"carol", "dave"} {
		must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-pw"},
			StringData: map[string]string{"password": name + "-password"}}))
	}
	must(t, k8s.Create(ctx, withPolicy(mailbox(ns, "carol", "Carol@reclaim.test", "carol-pw"), v1alpha1.MailboxDelete)))
	must(t, k8s.Create(ctx, mailbox(ns, "dave", "dave@reclaim.test", "dave-pw"))) // Retain, the default
	mailboxReady(t, ns, "carol", metav1.ConditionTrue, controllers.ReasonActive)
	mailboxReady(t, ns, "dave", metav1.ConditionTrue, controllers.ReasonActive)
	hasFinalizer(t, ns, "carol", true)
	hasFinalizer(t, ns, "dave", false)
	serverState(t, ns, "reclaim-test", "both serve", []string{"carol@reclaim.test", "dave@reclaim.test"}, nil)

	deleted(t, ns, "carol")
	serverState(t, ns, "reclaim-test", "carol's mail is listed for removal", []string{"dave@reclaim.test"}, []string{"carol@reclaim.test"})

	deleted(t, ns, "dave")
	serverState(t, ns, "reclaim-test", "dave's mail is kept", nil, []string{"carol@reclaim.test"})

	// carol comes back: her address is a mailbox again, so nothing of hers may be removed.
	must(t, k8s.Create(ctx, mailbox(ns, "carol", "carol@reclaim.test", "carol-pw")))
	serverState(t, ns, "reclaim-test", "a re-created carol is off the purge list", []string{"carol@reclaim.test"}, nil)
	hasFinalizer(t, ns, "carol", false)

	// The finalizer follows the policy.
	var carol v1alpha1.Mailbox
	eventually(t, "carol switches to Delete", func() error {
		if err := get(ns, "carol", &carol); err != nil {
			return err
		}
		carol.Spec.ReclaimPolicy = v1alpha1.MailboxDelete
		return k8s.Update(ctx, &carol)
	})
	hasFinalizer(t, ns, "carol", true)
	eventually(t, "carol switches back to Retain", func() error {
		if err := get(ns, "carol", &carol); err != nil {
			return err
		}
		carol.Spec.ReclaimPolicy = v1alpha1.MailboxRetain
		return k8s.Update(ctx, &carol)
	})
	hasFinalizer(t, ns, "carol", false)
	deleted(t, ns, "carol")
	serverState(t, ns, "reclaim-test", "a Retain carol deleted leaves no entry", nil, nil)
}

// A Delete-policy Mailbox that no MailDomain serves has no server to tell: it goes at once.
func TestReclaimWithoutDomain(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	must(t, k8s.Create(ctx, withPolicy(mailbox(ns, "erin", "erin@nowhere.test", "erin-pw"), v1alpha1.MailboxDelete)))
	mailboxReady(t, ns, "erin", metav1.ConditionFalse, controllers.ReasonDomainNotFound)
	hasFinalizer(t, ns, "erin", true)
	deleted(t, ns, "erin")
}
