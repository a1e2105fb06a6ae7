//go:build envtest

package envtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
)

func mailGroup(ns, name, addr string, members ...string) *v1alpha1.MailGroup {
	return &v1alpha1.MailGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.MailGroupSpec{Address: addr, Members: members},
	}
}

// groupReady waits for the MailGroup's Ready condition to have status and reason.
func groupReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *v1alpha1.MailGroup {
	t.Helper()
	g := &v1alpha1.MailGroup{}
	eventually(t, fmt.Sprintf("MailGroup %s Ready=%s/%s", name, status, reason), func() error {
		if err := get(ns, name, g); err != nil {
			return err
		}
		return condition(g.Status.Conditions, g.Generation, v1alpha1.ConditionReady, status, reason)
	})
	return g
}

func groupMessage(g *v1alpha1.MailGroup) string {
	if c := meta.FindStatusCondition(g.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		return c.Message
	}
	return ""
}

// A MailGroup reaches the mail server's objects.yaml and is Ready; a member added later reaches
// it too; one in a domain no MailDomain serves is not Ready and says why; the API server
// refuses a changed address and a bad acceptFrom, and defaults acceptFrom to Anyone.
func TestMailGroupRenderedAndReady(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	must(t, k8s.Create(ctx, mailDomain(ns, "groups-test", "groups.test")))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pw"}, StringData: map[string]string{"password": "secret"}}))
	must(t, k8s.Create(ctx, mailbox(ns, "alice", "alice@groups.test", "pw")))
	must(t, k8s.Create(ctx, mailbox(ns, "bob", "bob@groups.test", "pw")))
	team := mailGroup(ns, "team", "team@groups.test", "alice@groups.test", "someone@elsewhere.test")
	must(t, k8s.Create(ctx, team))
	if team.Spec.AcceptFrom != v1alpha1.AcceptFromAnyone {
		t.Errorf("acceptFrom defaulted to %q, want Anyone", team.Spec.AcceptFrom)
	}
	g := groupReady(t, ns, "team", metav1.ConditionTrue, controllers.ReasonActive)
	if g.Status.Members != 2 {
		t.Errorf("status.members = %d, want 2", g.Status.Members)
	}
	waitEvent(t, ns, "MailGroup", "team", corev1.EventTypeNormal, controllers.ReasonActive)
	eventually(t, "the server's config has the group", func() error {
		cfg, err := serverConfig(t, ns, "groups-test")
		if err != nil {
			return err
		}
		if len(cfg.Groups) != 1 || !slices.Equal(cfg.Groups[0].Expanded, []string{"alice@groups.test", "someone@elsewhere.test"}) {
			return fmt.Errorf("groups = %+v", cfg.Groups)
		}
		return nil
	})

	must(t, get(ns, "team", team))
	team.Spec.Members = append(team.Spec.Members, "bob@groups.test")
	must(t, k8s.Update(ctx, team))
	eventually(t, "the added member reaches the server's config", func() error {
		cfg, err := serverConfig(t, ns, "groups-test")
		if err != nil {
			return err
		}
		if len(cfg.Groups) != 1 || !slices.Contains(cfg.Groups[0].Expanded, "bob@groups.test") {
			return fmt.Errorf("groups = %+v", cfg.Groups)
		}
		return nil
	})

	// A member in our domain that is no mailbox: Rejected, naming the field; left out of the server.
	must(t, k8s.Create(ctx, mailGroup(ns, "typo", "typo@groups.test", "nobody@groups.test")))
	g = groupReady(t, ns, "typo", metav1.ConditionFalse, controllers.ReasonRejected)
	if msg := groupMessage(g); !strings.HasPrefix(msg, "spec.members[0]:") {
		t.Errorf("Rejected message %q does not name the field", msg)
	}

	must(t, k8s.Create(ctx, mailGroup(ns, "lost", "team@unknown.test", "alice@groups.test")))
	g = groupReady(t, ns, "lost", metav1.ConditionFalse, controllers.ReasonDomainNotFound)
	if msg := groupMessage(g); !strings.Contains(msg, "unknown.test") {
		t.Errorf("DomainNotFound message %q does not name the domain", msg)
	}
	waitEvent(t, ns, "MailGroup", "lost", corev1.EventTypeWarning, controllers.ReasonDomainNotFound)

	must(t, get(ns, "team", team))
	team.Spec.Address = "crew@groups.test"
	if err := k8s.Update(ctx, team); err == nil || !strings.Contains(err.Error(), "spec.address is immutable") {
		t.Errorf("changing the address: %v, want the immutability message", err)
	}
	bad := mailGroup(ns, "bad", "bad@groups.test", "alice@groups.test")
	bad.Spec.AcceptFrom = "Friends"
	if err := k8s.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "spec.acceptFrom") {
		t.Errorf("acceptFrom Friends: %v, want a refusal naming spec.acceptFrom", err)
	}
	if err := k8s.Create(ctx, mailGroup(ns, "empty", "empty@groups.test")); err == nil || !strings.Contains(err.Error(), "spec.members") {
		t.Errorf("no members: %v, want a refusal naming spec.members", err)
	}
}
