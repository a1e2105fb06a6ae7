package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeManifest(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "domain.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func antispamDomain(antispam string) string {
	return `apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: example-test}
spec:
  domain: example.test
  antispam:
` + antispam
}

// The antispam block of a manifest reaches the runtime config: zones lower-cased without their
// trailing dot, the default action Reject, return codes as prefixes.
func TestAntispamResolved(t *testing.T) {
	cfg, err := LoadManifests(writeManifest(t, antispamDomain(`
    dnsbls:
    - zone: Zen.Spamhaus.ORG.
    - zone: bl.example.net
      action: Junk
      returnCodes: ["127.0.0.2", "127.0.0.5/30"]
`)), plainHasher)
	if err != nil {
		t.Fatal(err)
	}
	want := []DNSBL{
		{Zone: "zen.spamhaus.org", Action: DNSBLReject},
		{Zone: "bl.example.net", Action: DNSBLJunk, ReturnCodes: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("127.0.0.4/30")}},
	}
	if got := cfg.Domains[0].DNSBLs(); !reflect.DeepEqual(got, want) {
		t.Errorf("DNSBLs = %+v, want %+v", got, want)
	}
}

// A bad antispam block stops loading with an error naming the object and the field.
func TestAntispamErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, block string
		want        []string
	}{
		{"unknown action", "    dnsbls: [{zone: zen.spamhaus.org, action: Maybe}]\n",
			[]string{"spec.antispam.dnsbls[0].action", `"Maybe"`}},
		{"zone with spaces", "    dnsbls: [{zone: zen.spamhaus.org}, {zone: 'zen spamhaus org'}]\n",
			[]string{"spec.antispam.dnsbls[1].zone"}},
		{"zone without a dot", "    dnsbls: [{zone: localhost}]\n", []string{"spec.antispam.dnsbls[0].zone"}},
		{"zone too long", "    dnsbls: [{zone: " + strings.Repeat("a.", 95) + "org}]\n", []string{"spec.antispam.dnsbls[0].zone", "reversed IPv6"}},
		{"zone twice", "    dnsbls: [{zone: a.example}, {zone: A.example.}]\n", []string{"spec.antispam.dnsbls[1].zone", "twice"}},
		{"return code not an address", "    dnsbls: [{zone: a.example, returnCodes: [127.0.0.2, two]}]\n",
			[]string{"spec.antispam.dnsbls[0].returnCodes[1]", `"two"`}},
		{"return code outside 127/8", "    dnsbls: [{zone: a.example, returnCodes: [10.0.0.2]}]\n",
			[]string{"spec.antispam.dnsbls[0].returnCodes[0]", "127.0.0.0/8"}},
		{"return code IPv6", "    dnsbls: [{zone: a.example, returnCodes: ['::1']}]\n",
			[]string{"spec.antispam.dnsbls[0].returnCodes[0]"}},
		{"return code wider than 127/8", "    dnsbls: [{zone: a.example, returnCodes: [127.0.0.0/7]}]\n",
			[]string{"spec.antispam.dnsbls[0].returnCodes[0]"}},
		{"too many lists", "    dnsbls:\n" + strings.Repeat("    - zone: x.example\n", 17),
			[]string{"spec.antispam.dnsbls", "at most 16"}},
		{"unknown field", "    dnsbl: [{zone: a.example}]\n", []string{"dnsbl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadManifests(writeManifest(t, antispamDomain(tc.block)), plainHasher)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range append(tc.want, "example-test") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
