package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// manifestExtensions are the files `kubectl apply -f DIR` reads.
var manifestExtensions = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// ReadManifests reads every manifest file directly in dir (not its subdirectories, as
// `kubectl apply -f DIR`), with any number of YAML documents per file, and returns the objects.
// Errors name the file, the document and the field.
func ReadManifests(dir string) (Objects, Sources, error) {
	var objs Objects
	src := Sources{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return objs, src, fmt.Errorf("reading manifests: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && manifestExtensions[strings.ToLower(filepath.Ext(e.Name()))] {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return objs, src, fmt.Errorf("reading manifests: no .yaml, .yml or .json files in %s", dir)
	}
	var errs []error
	for _, name := range names {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := readDocuments(path, data, &objs, src); err != nil {
			errs = append(errs, err)
		}
	}
	return objs, src, errors.Join(errs...)
}

// Sources maps "Kind namespace/name" to the file and document an object came from.
type Sources map[string]string

func sourceKey(kind, ns, name string) string { return kind + " " + qualified(ns, name) }

// Annotate prefixes each ObjectError in err with the file the object came from.
func (s Sources) Annotate(err error) error {
	var es Errors
	if !errors.As(err, &es) {
		return err
	}
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
		if where, ok := s[sourceKey(e.Kind, e.Namespace, e.Name)]; ok {
			msgs[i] = where + ": " + msgs[i]
		}
	}
	return errors.New(strings.Join(msgs, "\n"))
}

func readDocuments(path string, data []byte, objs *Objects, src Sources) error {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var errs []error
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if err == io.EOF {
			break
		}
		where := fmt.Sprintf("%s (document %d)", path, doc)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: not valid YAML: %w", where, err))
			continue
		}
		if err := decodeObject(where, js, objs, src); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

func decodeObject(where string, js []byte, objs *Objects, src Sources) error {
	var head struct {
		metav1.TypeMeta
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	// Lenient first look, so every later error can name the object.
	_ = kjson.UnmarshalCaseSensitivePreserveInts(js, &head)
	tm := head.TypeMeta
	if tm.Kind == "List" && tm.APIVersion == "v1" {
		var list struct {
			Items []jsonRaw `json:"items"`
		}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &list); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		var errs []error
		for i, item := range list.Items {
			errs = append(errs, decodeObject(fmt.Sprintf("%s items[%d]", where, i), item, objs, src))
		}
		return errors.Join(errs...)
	}
	var target any
	var meta *metav1.ObjectMeta
	switch {
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "MailDomain":
		objs.MailDomains = append(objs.MailDomains, v1alpha1.MailDomain{})
		o := &objs.MailDomains[len(objs.MailDomains)-1]
		target, meta = o, &o.ObjectMeta
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "Mailbox":
		objs.Mailboxes = append(objs.Mailboxes, v1alpha1.Mailbox{})
		o := &objs.Mailboxes[len(objs.Mailboxes)-1]
		target, meta = o, &o.ObjectMeta
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "MailGroup":
		objs.MailGroups = append(objs.MailGroups, v1alpha1.MailGroup{})
		o := &objs.MailGroups[len(objs.MailGroups)-1]
		target, meta = o, &o.ObjectMeta
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "RelayPolicy":
		objs.RelayPolicies = append(objs.RelayPolicies, v1alpha1.RelayPolicy{})
		o := &objs.RelayPolicies[len(objs.RelayPolicies)-1]
		target, meta = o, &o.ObjectMeta
	case tm.APIVersion == "v1" && tm.Kind == "Secret":
		objs.Secrets = append(objs.Secrets, corev1.Secret{})
		o := &objs.Secrets[len(objs.Secrets)-1]
		target, meta = o, &o.ObjectMeta
	case tm.Kind == "" || tm.APIVersion == "":
		return fmt.Errorf("%s: apiVersion and kind are required", where)
	default:
		return fmt.Errorf("%s: %s %q: kind %q of apiVersion %q is not one kubemail reads (MailDomain, Mailbox, MailGroup, RelayPolicy of %s; Secret of v1)",
			where, tm.Kind, qualified(head.Metadata.Namespace, head.Metadata.Name), tm.Kind, tm.APIVersion, v1alpha1.GroupVersion)
	}
	object := fmt.Sprintf("%s %q", tm.Kind, qualified(head.Metadata.Namespace, head.Metadata.Name))
	strict, err := kjson.UnmarshalStrict(js, target, kjson.DisallowUnknownFields)
	if err != nil {
		if named := valueError(js, target, err); named != nil {
			err = named
		}
		return fmt.Errorf("%s: %s: %w", where, object, err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("%s: %s: %w", where, object, errors.Join(strict...))
	}
	if meta.Name == "" {
		return fmt.Errorf("%s: %s: metadata.name is required", where, tm.Kind)
	}
	key := sourceKey(tm.Kind, meta.Namespace, meta.Name)
	if first, dup := src[key]; dup {
		return fmt.Errorf("%s: %s is declared again (first in %s)", where, key, first)
	}
	src[key] = where
	return nil
}

type jsonRaw []byte

func (r *jsonRaw) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// LoadManifests reads dir and resolves it: the standalone server's whole configuration step.
func LoadManifests(dir string, hash PasswordHasher) (*Config, error) {
	objs, src, err := ReadManifests(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := Resolve(objs, hash)
	if err != nil {
		return nil, src.Annotate(err)
	}
	if len(cfg.Domains) == 0 {
		return nil, fmt.Errorf("%s declares no MailDomain: there is nothing to serve", dir)
	}
	return cfg, nil
}
