//go:build envtest

package envtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
	"github.com/kubemail/kubemail/controllers/builder"
)

// TestSamplesBecomeAMailServer applies config/samples and checks what a cluster administrator
// would look at: the StatefulSet, the Services, the config the pod gets, and the status.
func TestSamplesBecomeAMailServer(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	applySamples(t, ns)

	sts := &appsv1.StatefulSet{}
	eventually(t, "StatefulSet example-test exists", func() error { return get(ns, "example-test", sts) })
	if ref := metav1.GetControllerOf(sts); ref == nil || ref.Kind != "MailDomain" || ref.Name != "example-test" {
		t.Errorf("StatefulSet controller = %+v, want MailDomain example-test", ref)
	}
	pod := sts.Spec.Template.Spec
	if c := pod.Containers[0]; c.Image != testImage || !slices.Contains(c.Args, "--manifests=/etc/kubemail/manifests") {
		t.Errorf("container image %q args %q: want the operator's image serving the mounted manifests", c.Image, c.Args)
	}
	if sc := pod.Containers[0].SecurityContext; sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation {
		t.Errorf("container security context %+v: want a read-only root and no privilege escalation", sc)
	}

	var clientSvc, headless corev1.Service
	eventually(t, "Services exist", func() error {
		if err := get(ns, "example-test", &clientSvc); err != nil {
			return err
		}
		return get(ns, "example-test-headless", &headless)
	})
	var ports []int32
	for _, p := range clientSvc.Spec.Ports {
		ports = append(ports, p.Port)
	}
	if !slices.Equal(ports, []int32{25, 587, 465, 143, 993}) || clientSvc.Spec.ClusterIP == "" || clientSvc.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Errorf("client Service ports %v clusterIP %q: want 25 587 465 143 993 on a cluster IP", ports, clientSvc.Spec.ClusterIP)
	}
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || sts.Spec.ServiceName != headless.Name {
		t.Errorf("headless Service clusterIP %q, StatefulSet serviceName %q", headless.Spec.ClusterIP, sts.Spec.ServiceName)
	}

	// The pod's view: the mounted manifests log alice and bob in with their passwords.
	eventually(t, "the server config logs in alice and bob", func() error {
		d, err := serverDirectory(t, ns, "example-test")
		if err != nil {
			return err
		}
		if !canLogIn(d, "alice@example.test", "alice-password") || !canLogIn(d, "bob@example.test", "bob-password") {
			return fmt.Errorf("alice or bob cannot log in")
		}
		if mb := d.Lookup("postmaster@example.test"); mb == nil || mb.Address != "alice@example.test" {
			return fmt.Errorf("postmaster@example.test resolves to %+v, want alice", mb)
		}
		if canLogIn(d, "alice@example.test", "bob-password") {
			return fmt.Errorf("alice logs in with bob's password")
		}
		return nil
	})

	md := &v1alpha1.MailDomain{}
	eventually(t, "MailDomain waits for its pod", func() error {
		if err := get(ns, "example-test", md); err != nil {
			return err
		}
		if md.Status.Mailboxes != 2 || md.Status.Service == nil {
			return fmt.Errorf("status.mailboxes = %d, service %+v: want 2 and the Service", md.Status.Mailboxes, md.Status.Service)
		}
		for _, c := range []struct {
			typ    string
			status metav1.ConditionStatus
			reason string
		}{
			{v1alpha1.ConditionReady, metav1.ConditionFalse, controllers.ReasonPodsNotReady},
			{v1alpha1.ConditionProgressing, metav1.ConditionTrue, controllers.ReasonPodsNotReady},
			{v1alpha1.ConditionDegraded, metav1.ConditionFalse, controllers.ReasonAsExpected},
		} {
			if err := condition(md.Status.Conditions, md.Generation, c.typ, c.status, c.reason); err != nil {
				return err
			}
		}
		return nil
	})
	mailboxReady(t, ns, "alice-example-test", metav1.ConditionTrue, controllers.ReasonActive)
	mailboxReady(t, ns, "bob-example-test", metav1.ConditionTrue, controllers.ReasonActive)

	// The status tells the administrator where the server is and what to publish in DNS.
	if s := md.Status.Service; s == nil || s.Name != "example-test" || s.ClusterDNSName != "example-test."+ns+".svc" {
		t.Errorf("status.service = %+v", s)
	}
	var dkim corev1.Secret
	if err := get(ns, "example-test-dkim", &dkim); err != nil {
		t.Fatal(err)
	}
	wantDKIM, err := builder.DKIMRecordValue(dkim.Data[builder.DKIMKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]string{}
	for _, r := range md.Status.DNSRecords {
		records[r.Type+" "+r.Name] = r.Value
	}
	for key, want := range map[string]string{
		"MX example.test.":                      "10 mail.example.test.",
		"TXT example.test.":                     "v=spf1 mx ~all",
		"TXT kubemail._domainkey.example.test.": wantDKIM,
	} {
		if records[key] != want {
			t.Errorf("DNS record %s = %q, want %q", key, records[key], want)
		}
	}
	if !strings.HasPrefix(records["TXT _dmarc.example.test."], "v=DMARC1;") {
		t.Errorf("no DMARC record in %v", records)
	}

	// envtest runs no kubelet: play the StatefulSet controller and report the pod ready.
	eventually(t, "the StatefulSet reports its pod ready", func() error {
		if err := get(ns, "example-test", sts); err != nil {
			return err
		}
		sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 1, ReadyReplicas: 1,
			AvailableReplicas: 1, CurrentReplicas: 1, UpdatedReplicas: 1}
		return k8s.Status().Update(ctx, sts) // retried on a conflict with the operator
	})
	eventually(t, "MailDomain Ready once its pod is", func() error {
		if err := get(ns, "example-test", md); err != nil {
			return err
		}
		return condition(md.Status.Conditions, md.Generation, v1alpha1.ConditionReady, metav1.ConditionTrue, controllers.ReasonAvailable)
	})
	waitEvent(t, ns, "MailDomain", "example-test", corev1.EventTypeNormal, controllers.ReasonAvailable)
}

// TestSteadyStateMakesNoWrites triggers reconciles of a settled MailDomain and its Mailboxes
// and checks that the operator writes nothing: no hot loops, no churn of the API server.
func TestSteadyStateMakesNoWrites(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	applySamples(t, ns)
	mailboxReady(t, ns, "alice-example-test", metav1.ConditionTrue, controllers.ReasonActive)
	mailboxReady(t, ns, "bob-example-test", metav1.ConditionTrue, controllers.ReasonActive)
	md := &v1alpha1.MailDomain{}
	eventually(t, "MailDomain status settles", func() error {
		if err := get(ns, "example-test", md); err != nil {
			return err
		}
		return condition(md.Status.Conditions, md.Generation, v1alpha1.ConditionDegraded, metav1.ConditionFalse, controllers.ReasonAsExpected)
	})

	// Wait until a reconcile of each kind starts and ends with no write in between.
	eventually(t, "a full reconcile round writes nothing", func() error {
		domains, mailboxes, writes := reconciles(t, "maildomain"), reconciles(t, "mailbox"), mgrWrites.Load()
		// A label change is an event for both controllers but changes no config.
		patch := client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"metadata":{"labels":{"touched":"%d"}}}`, writes)))
		if err := k8s.Patch(ctx, &v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "example-test"}}, patch); err != nil {
			return err
		}
		eventually(t, "both controllers reconcile", func() error {
			if reconciles(t, "maildomain") <= domains || reconciles(t, "mailbox") < mailboxes+2 {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		if w := mgrWrites.Load() - writes; w != 0 {
			return fmt.Errorf("the operator wrote %d times", w)
		}
		return nil
	})
}
