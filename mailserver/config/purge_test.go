package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestPurgeAnnotation(t *testing.T) {
	const domain = `apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata:
  name: example-test
  annotations:
    mail.kubemail.io/purge: %s
spec: {domain: example.test}
`
	for _, tc := range []struct {
		name, value string
		want        []string
		errField    string
	}{
		{"list", `"Dave@example.test, carol@example.test,carol@example.test  erin@EXAMPLE.test"`,
			[]string{"carol@example.test", "dave@example.test", "erin@example.test"}, ""},
		{"empty", `""`, nil, ""},
		{"other domain", `"carol@other.test"`, nil, purgeField},
		{"not an address", `"carol"`, nil, purgeField},
		{"path", `"../x@example.test"`, nil, purgeField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeManifests(t, map[string]string{"d.yaml": strings.Replace(domain, "%s", tc.value, 1)})
			cfg, err := LoadManifests(dir, plainHasher)
			if tc.errField != "" {
				// The error names the file, the object and the field.
				if err == nil || !strings.Contains(err.Error(), `MailDomain "default/example-test": `+tc.errField) {
					t.Fatalf("err = %v, want one naming MailDomain example-test's %s", err, tc.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Purge, tc.want) {
				t.Errorf("Purge = %q, want %q", cfg.Purge, tc.want)
			}
		})
	}
}

func TestFormatPurgeList(t *testing.T) {
	if got := FormatPurgeList([]string{"b@x.test", "a@x.test", "b@x.test"}); got != "a@x.test,b@x.test" {
		t.Errorf("FormatPurgeList = %q", got)
	}
}
