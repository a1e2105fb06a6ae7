package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MailboxSpec declares one mailbox: an address with a password, receiving into its own Maildir.
type MailboxSpec struct {
	// Address is the mailbox's primary address, "local@domain"; the domain must be one of a
	// MailDomain.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	Address string `json:"address"`

	// Aliases are further addresses delivered into this mailbox; the user may also send as them.
	// +optional
	Aliases []string `json:"aliases,omitempty"`

	// PasswordSecretRef names the Secret key holding the password: either the password itself,
	// which is hashed before use, or an argon2id ("$argon2id$...") or bcrypt ("$2b$...") hash.
	PasswordSecretRef SecretKeySelector `json:"passwordSecretRef"`
}

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
