//go:build envtest

package chart

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
	"github.com/kubemail/kubemail/controllers/manager"
)

const (
	release   = "kubemail"
	namespace = "kubemail-system"
)

// TestChart installs the chart with the helm CLI, runs the operator with exactly the chart's
// RBAC, applies config/samples, and uninstalls: the CRDs (and so the user's objects) stay.
func TestChart(t *testing.T) {
	ctx := context.Background()
	root, err := filepath.Abs("../../..")
	must(t, err)
	helm := os.Getenv("HELM_BIN")
	if helm == "" {
		t.Fatal("HELM_BIN is not set: run `make test-chart`, which builds bin/helm")
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets} // no CRDs: the chart brings them
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s (make envtest-assets): %v", assets, err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, os.WriteFile(kubeconfig, env.KubeConfig, 0o600))
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(helm, append(args, "--kubeconfig", kubeconfig)...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// values.schema.json is strict: a misspelt value is an error, not silently ignored.
	typo := exec.Command(helm, "template", release, filepath.Join(root, "charts", "kubemail"), "--set", "imag.tag=1")
	if out, err := typo.CombinedOutput(); err == nil || !strings.Contains(string(out), "imag") {
		t.Errorf("helm template with a misspelt value: err = %v, output:\n%s", err, out)
	}

	// The chart's CRDs are config/crd/bases, as `make manifests` copies them.
	bases, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	must(t, err)
	for _, base := range bases {
		rendered, err := exec.Command(helm, "template", release, filepath.Join(root, "charts", "kubemail"),
			"--show-only", "templates/crds/"+filepath.Base(base), "--set", "crds.keep=false").Output()
		must(t, err)
		want, err := os.ReadFile(base)
		must(t, err)
		var got, wantObj map[string]any
		must(t, yaml.Unmarshal(rendered, &got))
		must(t, yaml.Unmarshal(want, &wantObj))
		if !equality.Semantic.DeepEqual(got, wantObj) {
			t.Errorf("the chart's %s differs from %s: run make manifests", filepath.Base(base), base)
		}
	}

	out := run("install", release, filepath.Join(root, "charts", "kubemail"), "--namespace", namespace, "--create-namespace",
		"--set", "image.repository=registry.test/kubemail", "--set", "image.tag=chart-test")
	if !strings.Contains(out, "kubectl apply") {
		t.Errorf("NOTES.txt does not tell the next step:\n%s", out)
	}

	scheme, err := manager.Scheme()
	must(t, err)
	must(t, apiextensionsv1.AddToScheme(scheme))
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	must(t, err)
	eventually(t, "the chart's CRDs are established", func() error {
		for _, name := range []string{"maildomains", "mailboxes", "mailgroups", "relaypolicies"} {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := k8s.Get(ctx, client.ObjectKey{Name: name + ".mail.kubemail.io"}, &crd); err != nil {
				return err
			}
			established := false
			for _, c := range crd.Status.Conditions {
				established = established || c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
			}
			if !established {
				return fmt.Errorf("CRD %s not established", crd.Name)
			}
		}
		return nil
	})
	var deploy appsv1.Deployment
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: release}, &deploy))
	c := deploy.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.test/kubemail:chart-test" || !contains(c.Args, "--image=registry.test/kubemail:chart-test") {
		t.Errorf("operator container image %q args %q: want the chosen image, also for the mail servers", c.Image, c.Args)
	}

	// The operator as the chart deploys it: `kubemail manager` with the Deployment's args, as
	// its ServiceAccount (impersonated through the kubeconfig) with the chart's RBAC.
	kc, err := clientcmd.Load(env.KubeConfig)
	must(t, err)
	for _, auth := range kc.AuthInfos {
		auth.Impersonate = "system:serviceaccount:" + namespace + ":" + deploy.Spec.Template.Spec.ServiceAccountName
	}
	operatorKubeconfig := filepath.Join(t.TempDir(), "operator-kubeconfig")
	must(t, clientcmd.WriteToFile(*kc, operatorKubeconfig))
	t.Setenv("KUBECONFIG", operatorKubeconfig)
	if c.Args[0] != "manager" {
		t.Fatalf("the operator container runs %q, want kubemail manager", c.Args)
	}
	listen := map[string]string{}
	var args []string
	for _, a := range c.Args[1:] {
		for _, flag := range []string{"--metrics-bind-address", "--health-probe-bind-address"} {
			if strings.HasPrefix(a, flag+"=") {
				listen[flag] = freeAddr(t)
				a = flag + "=" + listen[flag]
			}
		}
		args = append(args, a)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() { done <- manager.MainContext(mctx, args) }()
	t.Cleanup(func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("kubemail manager exited with %d", code)
		}
	})
	eventually(t, "the operator's readiness probe passes", func() error {
		return httpOK("http://" + listen["--health-probe-bind-address"] + "/readyz")
	})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "samples-"}}
	must(t, k8s.Create(ctx, ns))
	applySamples(t, k8s, filepath.Join(root, "config", "samples"), ns.Name)
	eventually(t, "the samples become a mail server", func() error {
		var sts appsv1.StatefulSet
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "example-test"}, &sts); err != nil {
			return err
		}
		if sts.Spec.Template.Spec.Containers[0].Image != "registry.test/kubemail:chart-test" {
			return fmt.Errorf("mail server image %q", sts.Spec.Template.Spec.Containers[0].Image)
		}
		var mb v1alpha1.Mailbox
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "alice-example-test"}, &mb); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(mb.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Reason != controllers.ReasonActive {
			return fmt.Errorf("alice's Ready condition is %+v", c)
		}
		return nil
	})

	eventually(t, "the operator's metrics count its reconciles", func() error {
		resp, err := http.Get("http://" + listen["--metrics-bind-address"] + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), `controller_runtime_reconcile_total{controller="maildomain",result="success"}`) {
			return fmt.Errorf("no MailDomain reconciles in /metrics")
		}
		return nil
	})

	run("uninstall", release, "--namespace", namespace)
	eventually(t, "uninstall removes the operator", func() error {
		err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: release}, &deploy)
		if err == nil {
			return fmt.Errorf("Deployment %s is still there", release)
		}
		return client.IgnoreNotFound(err)
	})
	var md v1alpha1.MailDomain
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "example-test"}, &md); err != nil {
		t.Errorf("after uninstall the MailDomain is gone (CRDs must be kept): %v", err)
	}
}

func applySamples(t *testing.T, k8s client.Client, dir, ns string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	must(t, err)
	for _, f := range files {
		data, err := os.ReadFile(f)
		must(t, err)
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if err == io.EOF {
				break
			}
			must(t, err)
			u := &unstructured.Unstructured{}
			must(t, yaml.Unmarshal(doc, &u.Object))
			if len(u.Object) == 0 {
				continue
			}
			u.SetNamespace(ns)
			must(t, k8s.Create(context.Background(), u))
		}
	}
}

func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after 60s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().String()
}

func httpOK(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
