//go:build envtest

package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
	"github.com/kubemail/kubemail/controllers/builder"
)

func mailbox(ns, name, addr, secret string, aliases ...string) *v1alpha1.Mailbox {
	return &v1alpha1.Mailbox{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.MailboxSpec{Address: addr, Aliases: aliases,
			PasswordSecretRef: v1alpha1.SecretKeySelector{Name: secret, Key: "password"}},
	}
}

func mailDomain(ns, name, domain string) *v1alpha1.MailDomain {
	return &v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.MailDomainSpec{Domain: domain}}
}

// TestMailboxRecoversWhenDomainAndSecretAppear follows a Mailbox created before its domain and
// its Secret: its status says what is missing at each step and it becomes Active by itself.
// Then its password changes and it is deleted, and the server's config follows.
func TestMailboxRecoversWhenDomainAndSecretAppear(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	must(t, k8s.Create(ctx, mailbox(ns, "carol", "carol@late.test", "carol-pw")))
	mailboxReady(t, ns, "carol", metav1.ConditionFalse, controllers.ReasonDomainNotFound)

	must(t, k8s.Create(ctx, mailDomain(ns, "late-test", "late.test")))
	mailboxReady(t, ns, "carol", metav1.ConditionFalse, controllers.ReasonSecretNotFound)

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "carol-pw"},
		StringData: map[string]string{"passwd": "typo-in-key"}}
	must(t, k8s.Create(ctx, secret))
	mb := mailboxReady(t, ns, "carol", metav1.ConditionFalse, controllers.ReasonSecretKeyNotFound)
	if msg := readyMessage(mb); msg == "" {
		t.Error("SecretKeyNotFound without a message")
	}

	secret.StringData = map[string]string{"password": "carol-first"}
	must(t, k8s.Update(ctx, secret))
	mailboxReady(t, ns, "carol", metav1.ConditionTrue, controllers.ReasonActive)
	// kubectl describe mailbox carol tells the story: each problem, then Active.
	for _, ev := range []struct{ typ, reason string }{
		{corev1.EventTypeWarning, controllers.ReasonDomainNotFound},
		{corev1.EventTypeWarning, controllers.ReasonSecretNotFound},
		{corev1.EventTypeWarning, controllers.ReasonSecretKeyNotFound},
		{corev1.EventTypeNormal, controllers.ReasonActive},
	} {
		waitEvent(t, ns, "Mailbox", "carol", ev.typ, ev.reason)
	}
	eventually(t, "carol logs in with her password", func() error {
		d, err := serverDirectory(t, ns, "late-test")
		if err != nil {
			return err
		}
		if !canLogIn(d, "carol@late.test", "carol-first") {
			return fmt.Errorf("carol-first does not log in")
		}
		return nil
	})

	// A new password replaces the old one in the server's config.
	must(t, get(ns, "carol-pw", secret))
	secret.StringData = map[string]string{"password": "carol-second"}
	must(t, k8s.Update(ctx, secret))
	eventually(t, "carol's new password replaces the old", func() error {
		d, err := serverDirectory(t, ns, "late-test")
		if err != nil {
			return err
		}
		if !canLogIn(d, "carol@late.test", "carol-second") || canLogIn(d, "carol@late.test", "carol-first") {
			return fmt.Errorf("the config still has the old password")
		}
		return nil
	})

	// Deleting the Mailbox removes its credentials from the server's config.
	must(t, k8s.Delete(ctx, mb))
	eventually(t, "carol's credentials are gone", func() error {
		d, err := serverDirectory(t, ns, "late-test")
		if err != nil {
			return err
		}
		if d.Mailbox("carol@late.test") != nil {
			return fmt.Errorf("carol is still in the config")
		}
		var s corev1.Secret
		md := mailDomain(ns, "late-test", "late.test")
		if err := get(ns, builder.SecretName(md), &s); err != nil {
			return err
		}
		if _, ok := builder.PasswordHashes(&s)["carol"]; ok {
			return fmt.Errorf("carol's hash is still in Secret %s", s.Name)
		}
		return nil
	})
}

// TestConflictingAddressIsRejected declares one address twice: the first Mailbox by name keeps
// it, the second is Rejected with a message naming the first, and the domain is Degraded.
func TestConflictingAddressIsRejected(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pw"},
		StringData: map[string]string{"password": "secret-one"}}))
	must(t, k8s.Create(ctx, mailDomain(ns, "dup-test", "dup.test")))
	must(t, k8s.Create(ctx, mailbox(ns, "a-first", "dan@dup.test", "pw")))
	must(t, k8s.Create(ctx, mailbox(ns, "b-second", "erin@dup.test", "pw", "dan@dup.test")))
	mailboxReady(t, ns, "a-first", metav1.ConditionTrue, controllers.ReasonActive)
	mb := mailboxReady(t, ns, "b-second", metav1.ConditionFalse, controllers.ReasonRejected)
	if msg := readyMessage(mb); !strings.Contains(msg, "a-first") {
		t.Errorf("Rejected message %q does not name the Mailbox that has the address", msg)
	}
	md := &v1alpha1.MailDomain{}
	eventually(t, "MailDomain Degraded by the rejected Mailbox", func() error {
		if err := get(ns, "dup-test", md); err != nil {
			return err
		}
		if md.Status.Mailboxes != 1 {
			return fmt.Errorf("status.mailboxes = %d, want 1", md.Status.Mailboxes)
		}
		return condition(md.Status.Conditions, md.Generation, v1alpha1.ConditionDegraded, metav1.ConditionTrue, controllers.ReasonMailboxesRejected)
	})
}

// TestRelayPolicyReachesTheDomainsItSelects checks that a policy naming two domains reaches each
// domain's config narrowed to that domain, and not a third domain's.
func TestRelayPolicyReachesTheDomainsItSelects(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	for _, d := range []string{"one", "two", "three"} {
		must(t, k8s.Create(ctx, mailDomain(ns, d, d+".test")))
	}
	must(t, k8s.Create(ctx, &v1alpha1.RelayPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "apps"},
		Spec:       v1alpha1.RelayPolicySpec{Domains: []string{"one.test", "two.test"}, TrustedNetworks: []string{"10.1.0.0/16"}},
	}))
	policyReady(t, ns, "apps", metav1.ConditionTrue, controllers.ReasonApplied)

	// A policy naming a domain nobody serves, and one whose smarthost credentials are missing.
	must(t, k8s.Create(ctx, &v1alpha1.RelayPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nowhere"},
		Spec: v1alpha1.RelayPolicySpec{Domains: []string{"one.test", "nowhere.test"}}}))
	policyReady(t, ns, "nowhere", metav1.ConditionFalse, controllers.ReasonDomainNotFound)
	must(t, k8s.Create(ctx, &v1alpha1.RelayPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "relay"},
		Spec: v1alpha1.RelayPolicySpec{Smarthost: &v1alpha1.Smarthost{Host: "smtp.provider.example",
			CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "relay-login"}}}}))
	policyReady(t, ns, "relay", metav1.ConditionFalse, controllers.ReasonSecretNotFound)
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "relay-login"},
		StringData: map[string]string{"username": "u", "password": "p"}}))
	policyReady(t, ns, "relay", metav1.ConditionTrue, controllers.ReasonApplied)
	eventually(t, "the smarthost and its credentials reach the server's config", func() error {
		dir, err := serverDirectory(t, ns, "two")
		if err != nil {
			return err
		}
		for _, p := range dir.Config().RelayPolicies {
			if p.Name == "relay" && p.Smarthost != nil && p.Smarthost.Username == "u" && p.Smarthost.Password == "p" {
				return nil
			}
		}
		return fmt.Errorf("policies %+v", dir.Config().RelayPolicies)
	})
	must(t, k8s.Delete(ctx, &v1alpha1.RelayPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "relay"}}))
	must(t, k8s.Delete(ctx, &v1alpha1.RelayPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nowhere"}}))

	for _, d := range []string{"one", "two", "three"} {
		eventually(t, "RelayPolicy in the config of "+d, func() error {
			dir, err := serverDirectory(t, ns, d)
			if err != nil {
				return err
			}
			policies := userPolicies(dir.Config())
			if d == "three" {
				if len(policies) != 0 {
					return fmt.Errorf("three.test got %+v", policies)
				}
				return nil
			}
			if len(policies) != 1 || len(policies[0].Domains) != 1 || policies[0].Domains[0] != d+".test" ||
				policies[0].TrustedNetworks[0] != "10.1.0.0/16" {
				return fmt.Errorf("%s.test has policies %+v", d, policies)
			}
			return nil
		})
	}
}

// TestChildNameTakenIsNotOverwritten puts a ConfigMap of someone else's where the MailDomain's
// would go: the operator leaves it alone and says so in the status.
func TestChildNameTakenIsNotOverwritten(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	theirs := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken-manifests"}, Data: map[string]string{"keep": "me"}}
	must(t, k8s.Create(ctx, theirs))
	must(t, k8s.Create(ctx, mailDomain(ns, "taken", "taken.test")))
	md := &v1alpha1.MailDomain{}
	eventually(t, "MailDomain reports the name conflict", func() error {
		if err := get(ns, "taken", md); err != nil {
			return err
		}
		return condition(md.Status.Conditions, md.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, "NameConflict")
	})
	must(t, get(ns, "taken-manifests", theirs))
	if theirs.Data["keep"] != "me" || len(theirs.Data) != 1 || len(theirs.OwnerReferences) != 0 {
		t.Errorf("the operator changed a ConfigMap it does not own: %+v", theirs)
	}
}

func readyMessage(mb *v1alpha1.Mailbox) string {
	for _, c := range mb.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady {
			return c.Message
		}
	}
	return ""
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// policyReady waits for the RelayPolicy's Ready condition to have status and reason.
func policyReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	rp := &v1alpha1.RelayPolicy{}
	eventually(t, fmt.Sprintf("RelayPolicy %s Ready=%s/%s", name, status, reason), func() error {
		if err := get(ns, name, rp); err != nil {
			return err
		}
		return condition(rp.Status.Conditions, rp.Generation, v1alpha1.ConditionReady, status, reason)
	})
}

// TestDomainDeclaredTwice declares one domain in two MailDomains: the first by name serves it,
// the second says why it does not, and renders nothing.
func TestDomainDeclaredTwice(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	must(t, k8s.Create(ctx, mailDomain(ns, "a-twice", "twice.test")))
	must(t, k8s.Create(ctx, mailDomain(ns, "b-twice", "Twice.Test.")))
	md := &v1alpha1.MailDomain{}
	eventually(t, "the second MailDomain is refused", func() error {
		if err := get(ns, "b-twice", md); err != nil {
			return err
		}
		if err := condition(md.Status.Conditions, md.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, "InvalidSpec"); err != nil {
			return err
		}
		if msg := meta.FindStatusCondition(md.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "spec.domain") {
			return fmt.Errorf("message %q does not name spec.domain", msg)
		}
		return nil
	})
	eventually(t, "the first MailDomain serves it", func() error {
		if err := get(ns, "a-twice", md); err != nil {
			return err
		}
		return condition(md.Status.Conditions, md.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, controllers.ReasonPodsNotReady)
	})
	var sts appsv1.StatefulSet
	if err := get(ns, "b-twice", &sts); err == nil {
		t.Error("the refused MailDomain got a StatefulSet")
	}
}
