//go:build envtest

package envtest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kustomizeBuild renders a kustomization directory as `kustomize build DIR` and `kubectl
// kustomize DIR` do (both are this sigs.k8s.io/kustomize/api).
func kustomizeBuild(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// copyConfig copies config/ into a temporary directory and sets the image in its
// config/default as `kustomize edit set image kubemail=IMG` does: what hack/deploy.sh deploys.
func copyConfig(t *testing.T, img string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("../../config", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../../config", path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	must(t, err)
	kpath := filepath.Join(dst, "default", "kustomization.yaml")
	data, err := os.ReadFile(kpath)
	must(t, err)
	var k map[string]any
	must(t, yaml.Unmarshal(data, &k))
	name, tag, _ := strings.Cut(img, ":")
	k["images"] = []any{map[string]any{"name": "kubemail", "newName": name, "newTag": tag}}
	data, err = yaml.Marshal(k)
	must(t, err)
	must(t, os.WriteFile(kpath, data, 0o644))
	return filepath.Join(dst, "default")
}

// TestDeployManifests renders config/default with an image set, as `make deploy IMG=...` does,
// and checks what an administrator relies on: the API server accepts every object (server-side
// dry run), the operator runs the image and makes the mail server pods run the same one, and it
// runs as the ServiceAccount the generated roles are bound to.
func TestDeployManifests(t *testing.T) {
	const img = "registry.test/kubemail:v1.2.3"
	objs := kustomizeBuild(t, copyConfig(t, img))
	kinds := map[string]int{}
	var deployment *unstructured.Unstructured
	boundTo := map[string]bool{} // kind/name of the roles bound -> to namespace/serviceaccount
	for _, u := range objs {
		kinds[u.GetKind()]++
		switch u.GetKind() {
		case "Deployment":
			deployment = u
		case "ClusterRoleBinding", "RoleBinding":
			subjects, _, _ := unstructured.NestedSlice(u.Object, "subjects")
			for _, s := range subjects {
				s := s.(map[string]any)
				boundTo[u.GetKind()+" "+s["namespace"].(string)+"/"+s["name"].(string)] = true
			}
		}
		err := k8s.Patch(context.Background(), u, client.Apply, client.FieldOwner("kubemail-deploy"), client.DryRunAll, client.ForceOwnership)
		if err != nil {
			t.Errorf("the API server refuses %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	for kind, n := range map[string]int{"CustomResourceDefinition": 4, "Namespace": 1, "ServiceAccount": 1, "ClusterRole": 1,
		"ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1, "Deployment": 1} {
		if kinds[kind] != n {
			t.Errorf("%d %s objects rendered, want %d (all: %v)", kinds[kind], kind, n, kinds)
		}
	}
	if deployment == nil {
		t.Fatal("no Deployment")
	}
	containers, _, _ := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	c := containers[0].(map[string]any)
	if c["image"] != img {
		t.Errorf("the operator runs %v, want %s", c["image"], img)
	}
	var mailImage any
	env, _ := c["env"].([]any)
	for _, e := range env {
		if e := e.(map[string]any); e["name"] == "KUBEMAIL_IMAGE" {
			mailImage = e["value"]
		}
	}
	if mailImage != img {
		t.Errorf("the mail server pods would run %v (KUBEMAIL_IMAGE), want the operator's %s", mailImage, img)
	}
	sa, _, _ := unstructured.NestedString(deployment.Object, "spec", "template", "spec", "serviceAccountName")
	for _, b := range []string{"ClusterRoleBinding", "RoleBinding"} {
		if !boundTo[b+" "+deployment.GetNamespace()+"/"+sa] {
			t.Errorf("no %s binds the operator's ServiceAccount %s/%s (bindings: %v)", b, deployment.GetNamespace(), sa, boundTo)
		}
	}
}
