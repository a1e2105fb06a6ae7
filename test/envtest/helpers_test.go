//go:build envtest

package envtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/config"
)

// applySamples creates every object of config/samples in ns, as `kubectl apply -f
// config/samples -n ns` would.
func applySamples(t *testing.T, ns string) {
	t.Helper()
	files, err := filepath.Glob("../../config/samples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		objs, err := readObjects(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range objs {
			u.SetNamespace(ns)
			if err := k8s.Create(context.Background(), u); err != nil {
				t.Fatalf("%s: creating %s %s: %v", f, u.GetKind(), u.GetName(), err)
			}
		}
	}
}

// readObjects reads every YAML document of a manifest file.
func readObjects(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// get reads the named object in ns into obj.
func get(ns, name string, obj client.Object) error {
	return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
}

// condition checks that obj's condition typ has status and reason, for the current generation.
func condition(conds []metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason string) error {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return fmt.Errorf("no %s condition in %+v", typ, conds)
	}
	if c.Status != status || c.Reason != reason || c.ObservedGeneration != gen {
		return fmt.Errorf("%s = %s/%s (generation %d, message %q), want %s/%s for generation %d",
			typ, c.Status, c.Reason, c.ObservedGeneration, c.Message, status, reason, gen)
	}
	return nil
}

// mailboxReady waits for the Mailbox's Ready condition to have status and reason.
func mailboxReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *v1alpha1.Mailbox {
	t.Helper()
	mb := &v1alpha1.Mailbox{}
	eventually(t, fmt.Sprintf("Mailbox %s Ready=%s/%s", name, status, reason), func() error {
		if err := get(ns, name, mb); err != nil {
			return err
		}
		return condition(mb.Status.Conditions, mb.Generation, v1alpha1.ConditionReady, status, reason)
	})
	return mb
}

// serverDirectory lays out the MailDomain's ConfigMap and Secret as the pod's projected volume
// does and loads them as `kubemail server --manifests` does.
func serverDirectory(t *testing.T, ns, domain string) (*config.Directory, error) {
	t.Helper()
	cfg, err := serverConfig(t, ns, domain)
	if err != nil {
		return nil, err
	}
	return config.NewDirectory(cfg), nil
}

// serverConfig is the config `kubemail server` loads from the MailDomain's ConfigMap and Secret.
func serverConfig(t *testing.T, ns, domain string) (*config.Config, error) {
	t.Helper()
	md := &v1alpha1.MailDomain{}
	if err := get(ns, domain, md); err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	var secret corev1.Secret
	if err := get(ns, builder.ConfigMapName(md), &cm); err != nil {
		return nil, err
	}
	if err := get(ns, builder.SecretName(md), &secret); err != nil {
		return nil, err
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, builder.ObjectsKey), []byte(cm.Data[builder.ObjectsKey]), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, builder.PasswordsKey), secret.Data[builder.PasswordsKey], 0o600); err != nil {
		return nil, err
	}
	return config.LoadManifests(dir, auth.NewHasher())
}

// canLogIn reports whether password logs in as addr on the server the operator configured.
func canLogIn(d *config.Directory, addr, password string) bool {
	mb := d.Mailbox(addr)
	return mb != nil && auth.Verify(mb.PasswordHash, password)
}

// reconciles is how many reconciles the named controller has finished without error.
func reconciles(t *testing.T, controller string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var name, result string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "controller":
					name = l.GetValue()
				case "result":
					result = l.GetValue()
				}
			}
			if name == controller && result == "success" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// waitEvent waits for the Event `kubectl describe` would show for the object: its type
// (Normal, Warning) and reason.
func waitEvent(t *testing.T, ns, kind, name, typ, reason string) {
	t.Helper()
	eventually(t, fmt.Sprintf("a %s %s Event for %s %s", typ, reason, kind, name), func() error {
		var events eventsv1.EventList
		if err := k8s.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == reason && e.Type == typ {
				return nil
			}
		}
		return fmt.Errorf("not among %d Events", len(events.Items))
	})
}
