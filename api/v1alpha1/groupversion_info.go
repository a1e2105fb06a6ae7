// Package v1alpha1 holds the kubemail API: MailDomain, Mailbox, MailGroup and RelayPolicy.
//
// These types are the only schema of kubemail. The operator reconciles them in a cluster, and
// `kubemail server --manifests DIR` reads the very same YAML on one machine; both resolve them
// into the mail server's runtime config with mailserver/config.Resolve.
//
// +kubebuilder:object:generate=true
// +groupName=mail.kubemail.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of every kubemail kind.
var GroupVersion = schema.GroupVersion{Group: "mail.kubemail.io", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the kubemail kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the kubemail kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&MailDomain{}, &MailDomainList{},
		&Mailbox{}, &MailboxList{},
		&MailGroup{}, &MailGroupList{},
		&RelayPolicy{}, &RelayPolicyList{},
	)
	metav1AddToGroupVersion(scheme)
	return nil
}
