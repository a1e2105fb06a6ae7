//go:build envtest

package envtest

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/mailserver/config"
)

func antispamDomain(ns, name string, lists ...v1alpha1.DNSBL) *v1alpha1.MailDomain {
	md := mailDomain(ns, name, name+".test")
	md.Spec.Antispam = &v1alpha1.AntispamSpec{DNSBLs: lists}
	return md
}

// The API server refuses a bad spec.antispam with a message naming the field, accepts a good
// one with action defaulting to Reject, and the operator hands it to the mail server unchanged:
// the config the pod loads has the lists.
func TestAntispamCRDAndPassThrough(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	many := make([]v1alpha1.DNSBL, 17)
	for i := range many {
		many[i] = v1alpha1.DNSBL{Zone: fmt.Sprintf("bl%d.example", i)}
	}
	for _, tc := range []struct {
		name  string
		lists []v1alpha1.DNSBL
		want  []string // all in the error
	}{
		{"unknown action", []v1alpha1.DNSBL{{Zone: "zen.spamhaus.org", Action: "Maybe"}}, []string{"spec.antispam.dnsbls[0].action", "Maybe"}},
		{"zone with spaces", []v1alpha1.DNSBL{{Zone: "zen spamhaus org"}}, []string{"spec.antispam.dnsbls[0].zone"}},
		{"zone without a dot", []v1alpha1.DNSBL{{Zone: "localhost"}}, []string{"spec.antispam.dnsbls[0].zone"}},
		{"zone twice", []v1alpha1.DNSBL{{Zone: "a.example"}, {Zone: "a.example", Action: "Junk"}}, []string{"spec.antispam.dnsbls[1]", "Duplicate"}},
		{"too many lists", many, []string{"spec.antispam.dnsbls", "16"}},
		{"return code outside 127/8", []v1alpha1.DNSBL{{Zone: "a.example", ReturnCodes: []string{"127.0.0.2", "10.0.0.2"}}}, []string{"spec.antispam.dnsbls[0].returnCodes", "127.0.0.0/8"}},
		{"return code not an address", []v1alpha1.DNSBL{{Zone: "a.example", ReturnCodes: []string{"two"}}}, []string{"spec.antispam.dnsbls[0].returnCodes"}},
		{"return code IPv6", []v1alpha1.DNSBL{{Zone: "a.example", ReturnCodes: []string{"::1"}}}, []string{"spec.antispam.dnsbls[0].returnCodes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := k8s.Create(ctx, antispamDomain(ns, "bad-antispam", tc.lists...))
			if err == nil {
				t.Fatal("the API server accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}

	md := antispamDomain(ns, "spam",
		v1alpha1.DNSBL{Zone: "zen.spamhaus.org"},
		v1alpha1.DNSBL{Zone: "bl.example", Action: v1alpha1.DNSBLJunk, ReturnCodes: []string{"127.0.0.2", "127.0.0.4/30"}})
	must(t, k8s.Create(ctx, md))
	got := &v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "spam"}}
	must(t, get(ns, "spam", got))
	if a := got.Spec.Antispam.DNSBLs[0].Action; a != v1alpha1.DNSBLReject {
		t.Errorf("action defaulted to %q, want Reject", a)
	}
	want := &config.Antispam{DNSBLs: []config.DNSBL{
		{Zone: "zen.spamhaus.org", Action: config.DNSBLReject},
		{Zone: "bl.example", Action: config.DNSBLJunk, ReturnCodes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("127.0.0.4/30")}},
	}}
	eventually(t, "the server config has the lists", func() error {
		cfg, err := serverConfig(t, ns, "spam")
		if err != nil {
			return err
		}
		if len(cfg.Domains) != 1 || !reflect.DeepEqual(cfg.Domains[0].Antispam, want) {
			return fmt.Errorf("domains %+v", cfg.Domains)
		}
		return nil
	})
}
