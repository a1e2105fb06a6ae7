package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MailboxSpec declares one mailbox: an address with a password, receiving into its own Maildir.
type MailboxSpec struct {
	// Address is the mailbox's primary address, "local@domain"; the domain must be one of a
	// MailDomain.
	// It cannot be changed: the mail on disk is filed under it; add an alias instead.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern="^[A-Za-z0-9#$&'*=?^_`{|}~-]+([.][A-Za-z0-9#$&'*=?^_`{|}~-]+)*@([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])+[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.address is immutable; add an alias or create a new Mailbox"
	Address string `json:"address"`

	// Aliases are further addresses delivered into this mailbox; the user may also send as them.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=254
	// +kubebuilder:validation:items:Pattern="^[A-Za-z0-9#$&'*=?^_`{|}~-]+([.][A-Za-z0-9#$&'*=?^_`{|}~-]+)*@([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])+[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$"
	// +listType=set
	Aliases []string `json:"aliases,omitempty"`

	// PasswordSecretRef names the Secret key holding the password: either the password itself,
	// which is hashed before use, or an argon2id ("$argon2id$...") or bcrypt ("$2b$...") hash.
	PasswordSecretRef SecretKeySelector `json:"passwordSecretRef"`

	// Quota is the most mail the mailbox may hold, counted as the size of its messages in every
	// folder. Mail that would pass it is refused with a temporary error (452 4.2.2), so the
	// sender's server keeps trying while the user makes room; a message larger than the whole
	// quota is refused for good (552 5.2.3). The server's own delivery notices are delivered
	// regardless. Unset means no limit.
	// +optional
	Quota *resource.Quantity `json:"quota,omitempty"`

	// ReclaimPolicy says what happens to the mail on disk when the Mailbox is deleted: Retain
	// (the default) keeps it, so re-creating the Mailbox finds it again; Delete removes it from
	// the mail server's volume. Credentials are removed at once in both cases.
	// +optional
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	ReclaimPolicy MailboxReclaimPolicy `json:"reclaimPolicy,omitempty"`
}

// MailboxReclaimPolicy is what happens to a deleted Mailbox's mail.
type MailboxReclaimPolicy string

const (
	// MailboxRetain keeps the mail on the volume after the Mailbox is deleted.
	MailboxRetain MailboxReclaimPolicy = "Retain"
	// MailboxDelete removes the mail from the volume after the Mailbox is deleted.
	MailboxDelete MailboxReclaimPolicy = "Delete"
)

// MailboxStatus is what the operator observed of a Mailbox.
type MailboxStatus struct {
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
// +kubebuilder:resource:shortName=mb
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Mailbox is one user's mailbox with its addresses and credentials.
type Mailbox struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MailboxSpec   `json:"spec"`
	Status MailboxStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// MailboxList is a list of Mailboxes.
type MailboxList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Mailbox `json:"items"`
}
