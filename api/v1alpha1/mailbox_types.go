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

	// AutoReply, when set, answers mail to this mailbox with an out-of-office reply (RFC 3834):
	// once per sender per interval, only for mail delivered to the INBOX that names one of the
	// mailbox's addresses in To or Cc, never to mailing lists, bulk or automatic mail, or the
	// null sender. Replies go out from the mailbox's address through the outbound queue
	// (DKIM-signed) with the null envelope sender, so they never bounce back.
	// +optional
	AutoReply *AutoReply `json:"autoReply,omitempty"`
}

// AutoReply is an out-of-office reply (what Sieve's vacation action does, RFC 5230).
// +kubebuilder:validation:XValidation:rule="!has(self.start) || !has(self.end) || timestamp(self.end) > timestamp(self.start)",message="spec.autoReply.end must be after spec.autoReply.start"
// +kubebuilder:validation:XValidation:rule="!has(self.interval) || duration(self.interval) >= duration('24h')",message="spec.autoReply.interval must be at least 24h"
type AutoReply struct {
	// Subject of the reply; by default "Auto: " followed by the subject of the message answered
	// (RFC 3834 3.1.5). One line.
	// +optional
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:Pattern=`^[^\r\n]*$`
	Subject string `json:"subject,omitempty"`

	// Body is the text of the reply (plain text, UTF-8).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=10240
	Body string `json:"body"`

	// Start is when replies begin (RFC 3339, e.g. "2026-11-27T00:00:00Z"); unset: at once.
	// +optional
	Start *metav1.Time `json:"start,omitempty"`

	// End is when replies stop (RFC 3339); it must be after start. Unset: until autoReply is
	// removed.
	// +optional
	End *metav1.Time `json:"end,omitempty"`

	// Interval is the least time between two replies to the same sender (RFC 3834 2), as a Go
	// duration such as "168h"; at least 24h, by default 7 days (168h).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	Interval *metav1.Duration `json:"interval,omitempty"`
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
