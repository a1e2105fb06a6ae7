package builder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/mailserver/config"
)

// Keys of the ConfigMap and Secret, which become the file names in the manifests directory.
const (
	ObjectsKey   = "objects.yaml"
	PasswordsKey = "passwords.yaml"

	// passwordsSecret is the name of the Secret manifest inside PasswordsKey that the rewritten
	// Mailboxes reference; it exists only in the pod's manifests directory.
	passwordsSecret = "kubemail-passwords"
)

// ServerConfig is what one MailDomain's server is configured with: the domain, the Mailboxes
// that resolved without error, their password hashes, and the RelayPolicies that apply.
type ServerConfig struct {
	Domain        *v1alpha1.MailDomain
	Mailboxes     []v1alpha1.Mailbox
	MailGroups    []v1alpha1.MailGroup
	RelayPolicies []v1alpha1.RelayPolicy
	// PasswordHashes maps a Mailbox's name to the argon2id or bcrypt hash of its password.
	PasswordHashes map[string]string
	// RelayCredentials are the Secrets the RelayPolicies' smarthosts log in with; their
	// username and password keys go into passwords.yaml as they are.
	RelayCredentials []corev1.Secret
	// ClusterDomains are the MailDomains the operator sees in the cluster (Domain itself among
	// them is skipped); objects.yaml routes mail for their domains to their client Services
	// (see clusterRoutes).
	ClusterDomains []v1alpha1.MailDomain
	// Purge are the addresses whose mail the server is to remove (deleted Mailboxes with
	// reclaimPolicy Delete): the MailDomain in objects.yaml lists them in
	// config.PurgeAnnotation.
	Purge []string
}

// BuildConfigMap renders objects.yaml: the domain, its Mailboxes (passwordSecretRef pointing at
// the hashes in passwords.yaml), its MailGroups, its RelayPolicies and the operator's ClusterRoutesPolicy,
// sorted by name so that the same input always gives the same bytes and an unchanged config is
// never rewritten.
func BuildConfigMap(cfg ServerConfig) (*corev1.ConfigMap, error) {
	md := cfg.Domain
	var docs [][]byte
	add := func(obj any) error {
		b, err := manifestYAML(obj)
		if err != nil {
			return fmt.Errorf("rendering manifests of MailDomain %s/%s: %w", md.Namespace, md.Name, err)
		}
		docs = append(docs, b)
		return nil
	}
	domainMeta := manifestMeta(md.ObjectMeta)
	if len(cfg.Purge) > 0 {
		domainMeta.Annotations = map[string]string{config.PurgeAnnotation: config.FormatPurgeList(cfg.Purge)}
	}
	if err := add(v1alpha1.MailDomain{
		TypeMeta:   typeMeta("MailDomain"),
		ObjectMeta: domainMeta,
		Spec:       md.Spec,
	}); err != nil {
		return nil, err
	}
	mailboxes := append([]v1alpha1.Mailbox(nil), cfg.Mailboxes...)
	sort.Slice(mailboxes, func(i, j int) bool { return mailboxes[i].Name < mailboxes[j].Name })
	for _, mb := range mailboxes {
		spec := *mb.Spec.DeepCopy()
		spec.PasswordSecretRef = v1alpha1.SecretKeySelector{Name: passwordsSecret, Key: mb.Name}
		if err := add(v1alpha1.Mailbox{TypeMeta: typeMeta("Mailbox"), ObjectMeta: manifestMeta(mb.ObjectMeta), Spec: spec}); err != nil {
			return nil, err
		}
	}
	groups := append([]v1alpha1.MailGroup(nil), cfg.MailGroups...)
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	for _, g := range groups {
		if err := add(v1alpha1.MailGroup{TypeMeta: typeMeta("MailGroup"), ObjectMeta: manifestMeta(g.ObjectMeta), Spec: g.Spec}); err != nil {
			return nil, err
		}
	}
	policies := append([]v1alpha1.RelayPolicy(nil), cfg.RelayPolicies...)
	if rp := clusterRoutes(cfg); rp != nil {
		for _, p := range policies {
			if p.Name == rp.Name { // the CRD forbids the name; never write a config that fails to load
				return nil, fmt.Errorf("RelayPolicy %s/%s has the name reserved for the operator's cluster routes", p.Namespace, p.Name)
			}
		}
		policies = append(policies, *rp)
	}
	sort.Slice(policies, func(i, j int) bool { return policies[i].Name < policies[j].Name })
	for _, rp := range policies {
		if err := add(v1alpha1.RelayPolicy{TypeMeta: typeMeta("RelayPolicy"), ObjectMeta: manifestMeta(rp.ObjectMeta), Spec: rp.Spec}); err != nil {
			return nil, err
		}
	}
	header := fmt.Sprintf("# Rendered by the kubemail operator from MailDomain %s/%s; edits are overwritten.\n", md.Namespace, md.Name)
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(md, ConfigMapName(md)),
		Data:       map[string]string{ObjectsKey: header + string(bytes.Join(docs, []byte("---\n")))},
	}, nil
}

// BuildSecret renders passwords.yaml: one Secret manifest with a key per Mailbox name holding its
// password hash, then the smarthost credentials Secrets of the RelayPolicies. Only Mailboxes in
// cfg.Mailboxes are written, so a deleted Mailbox's credentials leave the server with the next
// update of the Secret.
func BuildSecret(cfg ServerConfig) (*corev1.Secret, error) {
	md := cfg.Domain
	hashes := map[string]string{}
	for _, mb := range cfg.Mailboxes {
		h, ok := cfg.PasswordHashes[mb.Name]
		if !ok {
			return nil, fmt.Errorf("no password hash for Mailbox %s/%s", mb.Namespace, mb.Name)
		}
		hashes[mb.Name] = h
	}
	inner := corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: passwordsSecret, Namespace: md.Namespace},
		StringData: hashes,
	}
	docs := []corev1.Secret{inner}
	creds := append([]corev1.Secret(nil), cfg.RelayCredentials...)
	sort.Slice(creds, func(i, j int) bool { return creds[i].Name < creds[j].Name })
	for _, c := range creds {
		docs = append(docs, corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace},
			StringData: map[string]string{"username": string(c.Data["username"]), "password": string(c.Data["password"])},
		})
	}
	var b []byte
	for i, d := range docs {
		y, err := yaml.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("rendering the Secrets of MailDomain %s/%s: %w", md.Namespace, md.Name, err)
		}
		if i > 0 {
			b = append(b, "---\n"...)
		}
		b = append(b, y...)
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(md, SecretName(md)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{PasswordsKey: b},
	}, nil
}

// PasswordHashes reads back the hashes BuildSecret wrote, so the operator can keep a hash while
// the password it was made from is unchanged instead of re-hashing (and rewriting) on restart.
func PasswordHashes(s *corev1.Secret) map[string]string {
	if s == nil {
		return nil
	}
	first, _, _ := bytes.Cut(s.Data[PasswordsKey], []byte("\n---\n")) // the hashes come first
	var inner corev1.Secret
	if yaml.Unmarshal(first, &inner) != nil || inner.Name != passwordsSecret {
		return nil
	}
	return inner.StringData
}

// PurgeList reads back the addresses BuildConfigMap listed in the MailDomain's
// config.PurgeAnnotation, so the operator keeps them after the Mailboxes are gone.
func PurgeList(cm *corev1.ConfigMap) []string {
	if cm == nil {
		return nil
	}
	objects := cm.Data[ObjectsKey]
	first, _, _ := strings.Cut(objects, "\n---\n") // the MailDomain comes first
	var md v1alpha1.MailDomain
	if yaml.Unmarshal([]byte(first), &md) != nil || md.Kind != "MailDomain" {
		return nil
	}
	value := md.Annotations[config.PurgeAnnotation]
	if value == "" {
		return nil
	}
	return strings.Split(value, ",")
}

// manifestYAML renders obj as a manifest a person would write: without the empty status that
// the API types always serialise.
func manifestYAML(obj any) ([]byte, error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	return yaml.Marshal(m)
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: kind}
}

// manifestMeta keeps what identifies an object in a manifest and drops what the API server set.
func manifestMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace}
}
