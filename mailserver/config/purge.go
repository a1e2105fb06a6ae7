package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// PurgeAnnotation on a MailDomain lists addresses of that domain whose mail is to be removed
// from the server's volume: addresses separated by commas or white space, e.g.
//
//	metadata:
//	  annotations:
//	    mail.kubemail.io/purge: "carol@example.com, dave@example.com"
//
// Each one becomes an entry of Config.Purge. On every load and reload `kubemail server` removes
// the Maildir of each listed address that is not a current mailbox (mailserver/server); a
// listed address that is a mailbox is left alone, so mail is lost only where an administrator
// asked for it. Under the operator the annotation is written on the pod's copy of the
// MailDomain when a Mailbox with spec.reclaimPolicy: Delete is deleted, and the annotation on
// the MailDomain object in the API has no effect; a standalone server reads it from its
// manifests directory as written.
const PurgeAnnotation = "mail.kubemail.io/purge"

// purgeField names the annotation in errors, as `kubectl explain` would.
var purgeField = "metadata.annotations[" + PurgeAnnotation + "]"

// purgeList parses md's PurgeAnnotation: lower-cased addresses, each in domain.
func purgeList(md *v1alpha1.MailDomain, domain string) ([]string, error) {
	value, ok := md.Annotations[PurgeAnnotation]
	if !ok {
		return nil, nil
	}
	var addrs []string
	for _, a := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		local, d, err := CheckAddress(a)
		if err != nil {
			return nil, err
		}
		if d != domain {
			return nil, fmt.Errorf("%q is not an address of this MailDomain's domain %q", a, domain)
		}
		addrs = append(addrs, local+"@"+d)
	}
	return addrs, nil
}

// FormatPurgeList is the PurgeAnnotation value listing addrs: sorted, without duplicates.
func FormatPurgeList(addrs []string) string {
	return strings.Join(sortedUnique(addrs), ",")
}

func sortedUnique(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	n := 0
	for i, v := range out {
		if i == 0 || v != out[n-1] {
			out[n] = v
			n++
		}
	}
	return out[:n]
}
