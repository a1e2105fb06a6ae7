package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MailGroupSpec declares a distribution list: mail to its address goes to each of its members.
type MailGroupSpec struct {
	// Address is the group's address, "local@domain"; the domain must be one of a MailDomain,
	// and no Mailbox's address or alias nor another MailGroup's address may be the same.
	// It cannot be changed: create a new MailGroup instead.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern="^[A-Za-z0-9#$&'*=?^_`{|}~-]+([.][A-Za-z0-9#$&'*=?^_`{|}~-]+)*@([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])+[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.address is immutable; create a new MailGroup"
	Address string `json:"address"`

	// Members are the addresses the group's mail goes to: mailboxes (or aliases) of ours, other
	// MailGroups of ours (expanded; loops are refused), or addresses elsewhere. Each gets one
	// copy however often it is reached.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=254
	// +kubebuilder:validation:items:Pattern="^[A-Za-z0-9#$&'*+=?^_`{|}~-]+([.][A-Za-z0-9#$&'*+=?^_`{|}~-]+)*@([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])+[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$"
	// +listType=set
	Members []string `json:"members"`

	// AcceptFrom says who may send to the group: Anyone (the default); Members, senders whose
	// envelope address is a member (after expansion) or authenticated users who are members;
	// Domain, authenticated users (or clients of a trusted network) sending from the group's
	// own domain. Others get 550 5.7.1.
	// +optional
	// +kubebuilder:validation:Enum=Anyone;Members;Domain
	// +kubebuilder:default=Anyone
	AcceptFrom MailGroupAcceptFrom `json:"acceptFrom,omitempty"`
}

// MailGroupAcceptFrom is who may send to a MailGroup.
type MailGroupAcceptFrom string

const (
	// AcceptFromAnyone lets anyone send to the group.
	AcceptFromAnyone MailGroupAcceptFrom = "Anyone"
	// AcceptFromMembers lets only the group's members send to it.
	AcceptFromMembers MailGroupAcceptFrom = "Members"
	// AcceptFromDomain lets only authenticated senders of the group's domain send to it.
	AcceptFromDomain MailGroupAcceptFrom = "Domain"
)

// MailGroupStatus is what the operator observed of a MailGroup.
type MailGroupStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Members is the number of addresses in spec.members.
	// +optional
	Members int32 `json:"members,omitempty"`
	// Conditions: Ready (reason DomainNotFound when no MailDomain serves the address's domain).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mg
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.members`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// MailGroup is a distribution list: one address of ours that delivers to several members.
type MailGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MailGroupSpec   `json:"spec"`
	Status MailGroupStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// MailGroupList is a list of MailGroups.
type MailGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MailGroup `json:"items"`
}
