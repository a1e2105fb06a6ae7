package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RelayPolicySpec says how mail from the selected domains leaves, and who may relay through them.
type RelayPolicySpec struct {
	// Domains are the MailDomains (by spec.domain) this policy applies to; empty means all.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern="^([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])+[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$"
	// +listType=set
	Domains []string `json:"domains,omitempty"`

	// Smarthost, when set, receives all outbound mail instead of the recipients' MX hosts.
	// +optional
	Smarthost *Smarthost `json:"smarthost,omitempty"`

	// Routes are static next hops for recipient domains, like Postfix's transport_maps: mail
	// for a domain a route lists goes over SMTP to that route's host and port instead of the
	// domain's MX hosts, and a route comes before the smarthost. STARTTLS is opportunistic, as
	// towards MX hosts. Routes concern recipients, so they apply to all outbound mail of the
	// servers the policy is in, whichever sender domains spec.domains names. A domain the server
	// serves itself cannot be routed. When two policies route the same domain, the policy whose
	// name sorts first wins. The operator adds a route for every other MailDomain in the
	// cluster to its client Service, so mail between them stays inside the cluster.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	Routes []Route `json:"routes,omitempty"`

	// TrustedNetworks are CIDRs whose clients may send to any domain without authenticating,
	// such as in-cluster applications. Empty means none: only authenticated users relay.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(n, isCIDR(n))",message="trustedNetworks must be CIDRs such as 10.0.0.0/8 or fd00::/8"
	TrustedNetworks []string `json:"trustedNetworks,omitempty"`

	// Retry is the schedule of delivery attempts for outbound mail.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`

	// RateLimit bounds how fast one sender may submit mail.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// Route sends the mail for some recipient domains to one SMTP server.
type Route struct {
	// Domains are the recipient domains, such as b.example, whose mail takes this route.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern="^([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])+[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$"
	// +listType=set
	Domains []string `json:"domains"`
	// Host is the name or IP address of the SMTP server, such as
	// kubemail-b.mail.svc.cluster.local.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`
	// Port is the SMTP server's port; defaults to 25.
	// +optional
	// +kubebuilder:default=25
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
}

// SmarthostTLS is how the connection to a smarthost is secured.
// +kubebuilder:validation:Enum=starttls;tls;none
type SmarthostTLS string

const (
	SmarthostSTARTTLS SmarthostTLS = "starttls"
	SmarthostTLSOnly  SmarthostTLS = "tls"
	SmarthostNoTLS    SmarthostTLS = "none"
)

// Smarthost is a relay that takes all outbound mail.
type Smarthost struct {
	// Host name or address of the relay.
	// +kubebuilder:validation:MinLength=1
	Host string `json:"host"`
	// Port of the relay; defaults to 587.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// TLS is "starttls" (default), "tls" (implicit TLS) or "none".
	// +optional
	TLS SmarthostTLS `json:"tls,omitempty"`
	// CredentialsSecretRef names a Secret with "username" and "password" keys for SMTP AUTH.
	// +optional
	CredentialsSecretRef *LocalObjectReference `json:"credentialsSecretRef,omitempty"`
}

// RetryPolicy is the schedule of delivery attempts.
type RetryPolicy struct {
	// InitialInterval is the wait before the first retry; defaults to 5m.
	// +optional
	InitialInterval *metav1.Duration `json:"initialInterval,omitempty"`
	// MaxInterval caps the exponential backoff; defaults to 4h.
	// +optional
	MaxInterval *metav1.Duration `json:"maxInterval,omitempty"`
	// Lifetime is how long a message is retried before it bounces; defaults to 120h.
	// +optional
	Lifetime *metav1.Duration `json:"lifetime,omitempty"`
	// DelayWarningAfter is when the sender is told the message is delayed; defaults to 4h.
	// +optional
	DelayWarningAfter *metav1.Duration `json:"delayWarningAfter,omitempty"`
}

// RateLimit bounds how fast one sender may submit mail.
type RateLimit struct {
	// MessagesPerMinutePerSender is how many messages one authenticated sender may submit a minute.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MessagesPerMinutePerSender int32 `json:"messagesPerMinutePerSender,omitempty"`
}

// RelayPolicyStatus is what the operator observed of a RelayPolicy.
type RelayPolicyStatus struct {
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
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name != 'kubemail-cluster-routes'",message="the name kubemail-cluster-routes is reserved for the routes the operator adds to each MailDomain's config"

// RelayPolicy says how outbound mail is relayed and who may relay without authenticating.
type RelayPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RelayPolicySpec   `json:"spec"`
	Status RelayPolicyStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// RelayPolicyList is a list of RelayPolicies.
type RelayPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RelayPolicy `json:"items"`
}
