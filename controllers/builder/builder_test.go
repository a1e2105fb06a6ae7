package builder

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml with the rendered objects")

func sampleDomain() *v1alpha1.MailDomain {
	size := resource.MustParse("25Mi")
	return &v1alpha1.MailDomain{
		ObjectMeta: metav1.ObjectMeta{Name: "example-test", Namespace: "mail", UID: "6f0c1c52-0000-4000-8000-000000000001",
			Generation: 3, ResourceVersion: "42", Labels: map[string]string{"team": "ops"}},
		Spec: v1alpha1.MailDomainSpec{Domain: "example.test", MaxMessageSize: &size},
	}
}

func sampleConfig() ServerConfig {
	md := sampleDomain()
	mb := func(name, addr string, aliases ...string) v1alpha1.Mailbox {
		return v1alpha1.Mailbox{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "mail", UID: types.UID("uid-" + name), ResourceVersion: "7"},
			Spec: v1alpha1.MailboxSpec{Address: addr, Aliases: aliases,
				PasswordSecretRef: v1alpha1.SecretKeySelector{Name: name + "-pw", Key: "password"}},
			Status: v1alpha1.MailboxStatus{ObservedGeneration: 1},
		}
	}
	return ServerConfig{
		Domain: md,
		// Out of order on purpose: the rendering sorts them.
		Mailboxes: []v1alpha1.Mailbox{mb("bob", "bob@example.test"), mb("alice", "alice@example.test", "postmaster@example.test")},
		// Out of order on purpose too; "team" nests "all" and has a member elsewhere.
		MailGroups: []v1alpha1.MailGroup{{
			ObjectMeta: metav1.ObjectMeta{Name: "team", Namespace: "mail", UID: "uid-team", ResourceVersion: "8"},
			Spec: v1alpha1.MailGroupSpec{Address: "team@example.test", Members: []string{"all@example.test", "Carol@Partners.Test"},
				AcceptFrom: v1alpha1.AcceptFromMembers},
		}, {
			ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: "mail", UID: "uid-all", ResourceVersion: "8"},
			Spec:       v1alpha1.MailGroupSpec{Address: "all@example.test", Members: []string{"postmaster@example.test", "bob@example.test"}},
		}},
		RelayPolicies: []v1alpha1.RelayPolicy{{
			ObjectMeta: metav1.ObjectMeta{Name: "cluster-apps", Namespace: "mail"},
			Spec: v1alpha1.RelayPolicySpec{TrustedNetworks: []string{"10.0.0.0/8"},
				Smarthost: &v1alpha1.Smarthost{Host: "smtp.provider.example", CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "provider-login"}},
				Routes:    []v1alpha1.Route{{Domains: []string{"legacy.example"}, Host: "mail.legacy.example", Port: 2525}}},
		}},
		// The cluster's MailDomains, this one among them: the others get a route each.
		ClusterDomains: []v1alpha1.MailDomain{
			{ObjectMeta: metav1.ObjectMeta{Name: "partners", Namespace: "mail"}, Spec: v1alpha1.MailDomainSpec{Domain: "partners.test"}},
			*md,
			{ObjectMeta: metav1.ObjectMeta{Name: "b-example", Namespace: "team-b"}, Spec: v1alpha1.MailDomainSpec{Domain: "B.Example"}},
		},
		RelayCredentials: []corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Name: "provider-login", Namespace: "mail", ResourceVersion: "9"},
			Data:       map[string][]byte{"username": []byte("relay-user"), "password": []byte("relay-pass"), "unrelated": []byte("x")},
		}},
		// Deleted Mailboxes whose mail goes (reclaimPolicy Delete), out of order on purpose.
		Purge: []string{"dave@example.test", "carol@example.test"},
		PasswordHashes: map[string]string{
			// auth.Hash("alice-password") and auth.Hash("bob-password"), fixed for the golden files.
			"alice": "$argon2id$v=19$m=19456,t=2,p=1$o1gXEmp1o8QPAkU4rXIXlw$NTzxzmA3QXMKAyWNsF8Jl3hkxXS5X47ZCMFahZ/6sKQ",
			"bob":   "$argon2id$v=19$m=19456,t=2,p=1$PbZ89EhNsl22exG0ceEBxg$hdWnJzv1BzokJ2Mf2SuXE9eMHdEGhTD8mQ/t09CK7oY",
		},
	}
}

// golden compares obj, rendered as YAML, with testdata/name.golden.yaml.
func golden(t *testing.T, name string, obj any) {
	t.Helper()
	got, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".golden.yaml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./controllers/builder -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered object (run with -update and review the diff):\n%s", path, got)
	}
}

func TestGolden(t *testing.T) {
	cfg := sampleConfig()
	md := cfg.Domain
	sts, err := BuildStatefulSet(md, Options{Image: "ghcr.io/kubemail/kubemail:v0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "statefulset", sts)
	golden(t, "service-client", BuildClientService(md))
	golden(t, "service-headless", BuildHeadlessService(md))
	cm, err := BuildConfigMap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "configmap", cm)
	secret, err := BuildSecret(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Golden files are for reading: show the Secret's data decoded.
	readable := secret.DeepCopy()
	readable.StringData = map[string]string{}
	for k, v := range readable.Data {
		readable.StringData[k] = string(v)
	}
	readable.Data = nil
	golden(t, "secret", readable)

	custom := sampleDomain()
	class := "fast"
	size := resource.MustParse("20Gi")
	custom.Spec.Image = "registry.example/kubemail:custom"
	custom.Spec.TLS = &v1alpha1.TLSSpec{SecretName: "mail-example-test-tls"}
	custom.Spec.Storage = &v1alpha1.StorageSpec{Size: &size, StorageClassName: &class, WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
	custom.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}}
	custom.Spec.Service = &v1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
		ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		Annotations:           map[string]string{"lb.example/internal": "false"}}
	sts, err = BuildStatefulSet(custom, Options{Image: "ghcr.io/kubemail/kubemail:v0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "statefulset-custom", sts)
	golden(t, "service-client-loadbalancer", BuildClientService(custom))
}

// TestManifestsResolve lays the ConfigMap and Secret out as the projected volume does and loads
// the directory as the pod's `kubemail server --manifests` does: the contract between the
// operator and the server.
func TestManifestsResolve(t *testing.T) {
	cfg := sampleConfig()
	cm, err := BuildConfigMap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := BuildSecret(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ObjectsKey), []byte(cm.Data[ObjectsKey]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, PasswordsKey), secret.Data[PasswordsKey], 0o600); err != nil {
		t.Fatal(err)
	}
	serverHasher := auth.NewHasher()
	hasher := func(key, password string) (string, error) {
		if !auth.IsHash(password) {
			t.Errorf("Mailbox %s reached the server with a plain password", key)
		}
		return serverHasher(key, password)
	}
	rc, err := config.LoadManifests(dir, hasher)
	if err != nil {
		t.Fatalf("the server cannot load what the operator rendered: %v", err)
	}
	dir2 := config.NewDirectory(rc)
	if dir2.Domain("example.test") == nil {
		t.Fatalf("domain example.test missing from %+v", rc.Domains)
	}
	if got := rc.Domains[0].MaxMessageSize; got != 25<<20 {
		t.Errorf("MaxMessageSize = %d, want 25Mi", got)
	}
	alice := dir2.Lookup("postmaster@example.test")
	if alice == nil || alice.Address != "alice@example.test" || alice.PasswordHash != cfg.PasswordHashes["alice"] {
		t.Errorf("postmaster@example.test resolves to %+v, want alice's mailbox with her hash", alice)
	}
	if bob := dir2.Mailbox("bob@example.test"); bob == nil || !auth.Verify(bob.PasswordHash, "bob-password") {
		t.Errorf("bob@example.test = %+v, want a mailbox that bob-password logs into", bob)
	}
	if team := dir2.Group("team@example.test"); team == nil || team.AcceptFrom != "Members" ||
		!reflect.DeepEqual(team.Expanded, []string{"alice@example.test", "bob@example.test", "Carol@partners.test"}) {
		t.Errorf("team@example.test = %+v, want the group of all@ and Carol@partners.test, members only", team)
	}
	if len(rc.RelayPolicies) != 2 || rc.RelayPolicies[0].TrustedNetworks[0] != "10.0.0.0/8" {
		t.Errorf("RelayPolicies = %+v", rc.RelayPolicies)
	} else if sh := rc.RelayPolicies[0].Smarthost; sh == nil || sh.Username != "relay-user" || sh.Password != "relay-pass" {
		t.Errorf("smarthost = %+v, want it with the credentials of Secret provider-login", sh)
	} else if cr := rc.RelayPolicies[1]; cr.Name != ClusterRoutesPolicy || !reflect.DeepEqual(cr.Routes, []config.Route{
		{Domains: []string{"b.example"}, Host: "b-example.team-b.svc", Port: 25},
		{Domains: []string{"partners.test"}, Host: "partners.mail.svc", Port: 25},
	}) {
		t.Errorf("cluster routes = %+v", cr)
	}
	if strings.Contains(string(secret.Data[PasswordsKey]), "unrelated") {
		t.Error("a key of the credentials Secret other than username and password reached the pod")
	}
	if want := []string{"carol@example.test", "dave@example.test"}; !reflect.DeepEqual(rc.Purge, want) || !reflect.DeepEqual(PurgeList(cm), want) {
		t.Errorf("the server purges %q and PurgeList reads back %q, want %q", rc.Purge, PurgeList(cm), want)
	}
	if got := PasswordHashes(secret); got["alice"] != cfg.PasswordHashes["alice"] || len(got) != 2 {
		t.Errorf("PasswordHashes read back %v", got)
	}
}

func TestSecretNeedsEveryHash(t *testing.T) {
	cfg := sampleConfig()
	delete(cfg.PasswordHashes, "bob")
	if _, err := BuildSecret(cfg); err == nil || !strings.Contains(err.Error(), "bob") {
		t.Fatalf("BuildSecret without bob's hash: err = %v, want one naming bob", err)
	}
}

func TestStatefulSetNeedsImage(t *testing.T) {
	if _, err := BuildStatefulSet(sampleDomain(), Options{}); err == nil {
		t.Fatal("BuildStatefulSet with no image anywhere succeeded")
	}
}
