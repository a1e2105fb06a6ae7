//go:build envtest

package envtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
)

// TestPodContract takes the pod template, ConfigMap and Secret the operator rendered for
// config/samples, lays them out as the kubelet would, runs `kubemail server` with the
// container's command and args, and uses it as a mail user would: mail to an alias reaches the
// mailbox and is read over IMAP; a Mailbox applied later logs in without a restart once the
// kubelet syncs the volume, and cannot once it is deleted.
func TestPodContract(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	applySamples(t, ns)
	mailboxReady(t, ns, "alice-example-test", metav1.ConditionTrue, controllers.ReasonActive)
	mailboxReady(t, ns, "bob-example-test", metav1.ConditionTrue, controllers.ReasonActive)
	sts := &appsv1.StatefulSet{}
	eventually(t, "StatefulSet example-test exists", func() error { return get(ns, "example-test", sts) })
	spec := sts.Spec.Template.Spec
	c := spec.Containers[0]

	p := startPod(t, spec, c, podVolumes(t, ns, spec))
	probe := c.ReadinessProbe.HTTPGet
	readyz := "http://" + p.ports[probe.Port.StrVal] + probe.Path
	eventually(t, "the readiness probe passes", func() error {
		resp, err := http.Get(readyz)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", readyz, resp.Status)
		}
		return nil
	})

	// The server signs with the operator's DKIM key: the record it logs is the one the
	// MailDomain's status says to publish.
	md := &v1alpha1.MailDomain{}
	must(t, get(ns, "example-test", md))
	var dkimRecord string
	for _, r := range md.Status.DNSRecords {
		if strings.Contains(r.Name, "._domainkey.") {
			dkimRecord = r.Value
		}
	}
	eventually(t, "the server uses the operator's DKIM key", func() error {
		if dkimRecord == "" || !strings.Contains(p.log.String(), `"txt":"`+dkimRecord+`"`) {
			return fmt.Errorf("the server's log has no DKIM record %q", dkimRecord)
		}
		return nil
	})

	subject := fmt.Sprintf("pod contract %d", time.Now().UnixNano())
	must(t, sendMail(p.ports["smtp"], "postmaster@example.test", subject))
	eventually(t, "alice reads the mail sent to postmaster over IMAP", func() error {
		return imapFind(p.ports["imap"], "alice@example.test", "alice-password", subject)
	})
	// Bob submits with his password on 587 (STARTTLS, then AUTH); a wrong password is refused.
	reply := "re: " + subject
	must(t, submit(p.ports["submission"], "bob@example.test", "bob-password", "alice@example.test", reply))
	if err := submit(p.ports["submission"], "bob@example.test", "alice-password", "alice@example.test", "nope"); err == nil {
		t.Error("submission accepted bob with alice's password")
	}
	eventually(t, "alice reads bob's submitted mail", func() error {
		return imapFind(p.ports["imap"], "alice@example.test", "alice-password", reply)
	})

	// A Mailbox applied now: the operator updates the ConfigMap and Secret, the kubelet syncs
	// the volume, the running server reloads.
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dave-pw"},
		StringData: map[string]string{"password": "dave-password"}}))
	dave := mailbox(ns, "dave", "dave@example.test", "dave-pw")
	must(t, k8s.Create(ctx, dave))
	mailboxReady(t, ns, "dave", metav1.ConditionTrue, controllers.ReasonActive)
	must(t, projectFiles(p.mounts["manifests"], podVolumes(t, ns, spec)["manifests"]))
	eventually(t, "dave logs in without a restart", func() error {
		return imapFind(p.ports["imap"], "dave@example.test", "dave-password", "")
	})

	must(t, k8s.Delete(ctx, dave))
	eventually(t, "dave's login fails once his Mailbox is deleted", func() error {
		must(t, projectFiles(p.mounts["manifests"], podVolumes(t, ns, spec)["manifests"]))
		if err := imapFind(p.ports["imap"], "dave@example.test", "dave-password", ""); err == nil {
			return fmt.Errorf("dave still logs in")
		}
		return nil
	})
	if p.cmd.ProcessState != nil {
		t.Fatalf("the server exited: %v", p.cmd.ProcessState)
	}
}

// podVolumes reads the content of the pod's projected and Secret volumes from the API, by volume name.
func podVolumes(t *testing.T, ns string, spec corev1.PodSpec) map[string]map[string][]byte {
	t.Helper()
	out := map[string]map[string][]byte{}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			var s corev1.Secret
			must(t, get(ns, v.Secret.SecretName, &s))
			files := map[string][]byte{}
			for _, item := range v.Secret.Items {
				files[item.Path] = s.Data[item.Key]
			}
			out[v.Name] = files
			continue
		}
		if v.Projected == nil {
			continue
		}
		files := map[string][]byte{}
		for _, src := range v.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				var cm corev1.ConfigMap
				must(t, get(ns, src.ConfigMap.Name, &cm))
				for _, item := range src.ConfigMap.Items {
					files[item.Path] = []byte(cm.Data[item.Key])
				}
			case src.Secret != nil:
				var s corev1.Secret
				must(t, get(ns, src.Secret.Name, &s))
				for _, item := range src.Secret.Items {
					files[item.Path] = s.Data[item.Key]
				}
			}
		}
		out[v.Name] = files
	}
	return out
}

func sendMail(addr, to, subject string) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := "From: bob@example.test\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nSent through the pod the operator rendered.\r\n"
	if err := c.SendMail("bob@example.test", []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// submit sends a message on the submission port as user, after STARTTLS and AUTH PLAIN.
func submit(addr, user, password, to, subject string) error {
	c, err := gosmtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
		return err
	}
	msg := "From: " + user + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nSubmitted through the pod the operator rendered.\r\n"
	if err := c.SendMail(user, []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// imapFind logs in over STARTTLS and, if subject is not empty, looks for it in the INBOX.
func imapFind(addr, user, password, subject string) error {
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return err
	}
	if subject == "" {
		return c.Logout().Wait()
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return err
	}
	if sel.NumMessages == 0 {
		return fmt.Errorf("the INBOX of %s is empty", user)
	}
	all := imap.SeqSet{}
	all.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(all, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Envelope != nil && m.Envelope.Subject == subject {
			return c.Logout().Wait()
		}
	}
	return fmt.Errorf("no message %q in the INBOX of %s", subject, user)
}
