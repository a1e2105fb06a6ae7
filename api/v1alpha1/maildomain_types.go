package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MailDomainSpec declares one mail domain served by kubemail.
type MailDomainSpec struct {
	// Domain is the DNS domain this MailDomain receives mail for, e.g. "example.com".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Domain string `json:"domain"`

	// MaxMessageSize is the largest message accepted for this domain, advertised with the SMTP
	// SIZE extension. Defaults to 25Mi.
	// +optional
	MaxMessageSize *resource.Quantity `json:"maxMessageSize,omitempty"`

	// MaxRecipients is the largest number of recipients accepted in one SMTP transaction.
	// Defaults to 100 (RFC 5321 4.5.3.1.8 asks servers to accept at least 100).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxRecipients *int32 `json:"maxRecipients,omitempty"`
}

// MailDomainStatus is what the operator observed of a MailDomain.
type MailDomainStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Progressing, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status

// MailDomain is a DNS domain that kubemail receives and sends mail for.
type MailDomain struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MailDomainSpec   `json:"spec"`
	Status MailDomainStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// MailDomainList is a list of MailDomains.
type MailDomainList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MailDomain `json:"items"`
}
