//go:build envtest

package envtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
)

// TestPodContractReclaimDelete follows a Mailbox with reclaimPolicy Delete from the API to the
// volume: it gets mail, is deleted, and the server the operator configured refuses its login and
// removes its Maildir at once, while it runs; the other mailboxes' mail stays, also for the pod's
// successor on the same volume, which has nothing left to purge.
func TestPodContractReclaimDelete(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	applySamples(t, ns)
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "carol-pw"},
		StringData: map[string]string{"password": "carol-password"}}))
	must(t, k8s.Create(ctx, withPolicy(mailbox(ns, "carol", "carol@example.test", "carol-pw"), v1alpha1.MailboxDelete)))
	mailboxReady(t, ns, "carol", metav1.ConditionTrue, controllers.ReasonActive)
	mailboxReady(t, ns, "alice-example-test", metav1.ConditionTrue, controllers.ReasonActive)
	sts := &appsv1.StatefulSet{}
	eventually(t, "StatefulSet example-test exists", func() error { return get(ns, "example-test", sts) })
	spec := sts.Spec.Template.Spec
	c := spec.Containers[0]

	p := startPod(t, spec, c, podVolumes(t, ns, spec))
	subject := fmt.Sprintf("reclaim %d", time.Now().UnixNano())
	eventually(t, "the server takes mail for carol and alice", func() error {
		if err := sendMail(p.ports["smtp"], "carol@example.test", subject); err != nil {
			return err
		}
		return sendMail(p.ports["smtp"], "alice@example.test", subject)
	})
	eventually(t, "carol reads her mail", func() error {
		return imapFind(p.ports["imap"], "carol@example.test", "carol-password", subject)
	})
	carolDir := filepath.Join(p.mounts["data"], "mail", "example.test", "carol")
	purged := `"msg":"Purged a deleted mailbox","mailbox":"carol@example.test"`

	deleted(t, ns, "carol")
	eventually(t, "carol's login fails and her Maildir is removed once the kubelet has synced the volume", func() error {
		must(t, projectFiles(p.mounts["manifests"], podVolumes(t, ns, spec)["manifests"]))
		if err := imapFind(p.ports["imap"], "carol@example.test", "carol-password", ""); err == nil {
			return fmt.Errorf("carol still logs in")
		}
		if _, err := os.Stat(carolDir); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %v", carolDir, err)
		}
		if !strings.Contains(p.log.String(), purged) {
			return fmt.Errorf("the server has not logged carol's purge")
		}
		return nil
	})

	// The pod is replaced (a rollout, a node drain): its successor mounts the same volume.
	p.stop(t)
	next := startPodOn(t, spec, c, podVolumes(t, ns, spec), map[string]string{"data": p.mounts["data"]})
	eventually(t, "alice still reads her mail", func() error {
		return imapFind(next.ports["imap"], "alice@example.test", "alice-password", subject)
	})
	if strings.Contains(next.log.String(), purged) {
		t.Errorf("the successor purged carol again, but there was nothing left:\n%s", next.log.String())
	}
}
