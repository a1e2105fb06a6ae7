package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// A bad spec.antispam next to the valid samples stops start-up with an error naming the file,
// the MailDomain and the field.
func TestBadAntispamStopsStartup(t *testing.T) {
	for _, tc := range []struct {
		name, dnsbls string
		want         []string
	}{
		{"unknown action", "[{zone: zen.spamhaus.org, action: Maybe}]", []string{"spec.antispam.dnsbls[0].action", "Maybe"}},
		{"zone with spaces", "[{zone: zen.spamhaus.org}, {zone: 'zen spamhaus org'}]", []string{"spec.antispam.dnsbls[1].zone"}},
		{"return code outside 127/8", "[{zone: bl.example, returnCodes: [10.0.0.2]}]", []string{"spec.antispam.dnsbls[0].returnCodes[0]", "127.0.0.0/8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copySamples(t)
			writeFile(t, filepath.Join(dir, "zz-bad.yaml"), `apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: spam-test}
spec:
  domain: spam.test
  antispam:
    dnsbls: `+tc.dnsbls+"\n")
			code, out := runServerToExit(t, dir)
			if code == 0 {
				t.Fatalf("server exited 0 with a bad manifest; output:\n%s", out)
			}
			for _, w := range append([]string{"zz-bad.yaml", "spam-test"}, tc.want...) {
				if !strings.Contains(out, w) {
					t.Errorf("error output does not name %q:\n%s", w, out)
				}
			}
			if servingLine.MatchString(out) {
				t.Errorf("server logged Serving before refusing the manifests:\n%s", out)
			}
		})
	}
}
