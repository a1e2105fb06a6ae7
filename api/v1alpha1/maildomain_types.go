package v1alpha1

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MailDomainSpec declares one mail domain served by kubemail.
// +kubebuilder:validation:XValidation:rule="has(self.storage) == has(oldSelf.storage)",message="spec.storage cannot be added or removed after creation"
type MailDomainSpec struct {
	// Domain is the DNS domain this MailDomain receives mail for, e.g. "example.com": letters,
	// digits and hyphens in dot-separated labels (IDNs in their xn-- form). It cannot be changed:
	// the mailboxes on disk are filed under it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern="^([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])+[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.]?$"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.domain is immutable; create a new MailDomain instead"
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

	// DMARC says what the MX does with inbound mail that fails DMARC (RFC 7489).
	// +optional
	DMARC *DMARCPolicy `json:"dmarc,omitempty"`

	// Antispam is what the MX does against mail from known spam sources. Nothing by default.
	// +optional
	Antispam *AntispamSpec `json:"antispam,omitempty"`

	// Image is the container image of the mail server pods. Defaults to the operator's own image,
	// which carries the same kubemail binary.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// Resources of the mail server container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Storage is the persistent volume that holds the mailboxes and the queue. It is fixed when
	// the MailDomain is created (a StatefulSet's volume claims cannot change); grow a volume by
	// editing its PersistentVolumeClaim.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.storage is immutable: resize the PersistentVolumeClaim instead"
	Storage *StorageSpec `json:"storage,omitempty"`

	// Service is how mail clients and other mail servers reach this domain's server.
	// +optional
	Service *ServiceSpec `json:"service,omitempty"`

	// TLS names the certificate the server presents on STARTTLS and on the implicit-TLS ports.
	// Without it the server makes a self-signed certificate, kept on its volume.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`
}

// TLSSpec names a certificate for the mail server.
type TLSSpec struct {
	// SecretName is a Secret in the MailDomain's namespace with tls.crt and tls.key, such as
	// cert-manager writes for a Certificate (whose DNS names should include mail.<domain>).
	// A renewed certificate is served without a restart.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
}

// StorageSpec is the persistent volume claim template of the mail server.
type StorageSpec struct {
	// Size of the volume; defaults to 1Gi.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the volume; empty uses the cluster's default class.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName *string `json:"storageClassName,omitempty"`

	// WhenDeleted is what happens to the volumes when the MailDomain is deleted: Retain (the
	// default) keeps them and the mail on them, Delete removes them.
	// +optional
	// +kubebuilder:default=Retain
	// +kubebuilder:validation:Enum=Retain;Delete
	WhenDeleted appsv1.PersistentVolumeClaimRetentionPolicyType `json:"whenDeleted,omitempty"`
}

// ServiceSpec shapes the client Service that maps the mail ports 25, 587, 465, 143 and 993.
// +kubebuilder:validation:XValidation:rule="!has(self.externalTrafficPolicy) || self.type != 'ClusterIP'",message="externalTrafficPolicy needs type LoadBalancer or NodePort"
type ServiceSpec struct {
	// Type of the Service: ClusterIP (default), LoadBalancer or NodePort.
	// +optional
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;LoadBalancer;NodePort
	Type corev1.ServiceType `json:"type,omitempty"`

	// ExternalTrafficPolicy of a LoadBalancer or NodePort Service; "Local" keeps the clients'
	// source addresses, which the relay and rate limits act on.
	// +optional
	// +kubebuilder:validation:Enum=Cluster;Local
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`

	// Annotations added to the Service, e.g. for a cloud load balancer.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// MailDomainStatus is what the operator observed of a MailDomain.
type MailDomainStatus struct {
	// Mailboxes is how many Mailboxes of this domain the mail server is configured with.
	// +optional
	Mailboxes int32 `json:"mailboxes,omitempty"`

	// Service is where the mail server is reached.
	// +optional
	Service *ServiceAddress `json:"service,omitempty"`

	// DNSRecords are the records to publish in the domain's DNS zone so that other mail servers
	// deliver to this one and trust its mail: MX, the mail host's address, SPF, DKIM and DMARC.
	// +optional
	// +listType=atomic
	DNSRecords []DNSRecord `json:"dnsRecords,omitempty"`

	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Progressing, Degraded, and DNSPublished (whether dnsRecords are
	// published; it never affects Ready).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ServiceAddress is where a MailDomain's mail server is reached.
type ServiceAddress struct {
	// Name of the client Service.
	Name string `json:"name"`
	// ClusterDNSName reaches the server from inside the cluster, e.g. "example-test.mail.svc"
	// (the cluster's DNS search path completes it).
	ClusterDNSName string `json:"clusterDNSName"`
	// ExternalAddresses are the load balancer's IPs or host names, once it has them.
	// +optional
	// +listType=atomic
	ExternalAddresses []string `json:"externalAddresses,omitempty"`
}

// DNSRecord is one record to publish.
type DNSRecord struct {
	// Name is the fully qualified owner name, with a trailing dot.
	Name string `json:"name"`
	// Type is MX, A, AAAA, CNAME or TXT.
	Type string `json:"type"`
	// Value is the record data as a zone file has it (TXT values without the quotes).
	Value string `json:"value"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=md
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 52",message="metadata.name must be at most 52 characters: it names the StatefulSet and its pods"
// +kubebuilder:printcolumn:name="Domain",type=string,JSONPath=`.spec.domain`
// +kubebuilder:printcolumn:name="Mailboxes",type=integer,JSONPath=`.status.mailboxes`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="DNS",type=string,JSONPath=`.status.conditions[?(@.type=="DNSPublished")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

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

// DMARCOnReject is what happens to mail failing DMARC when its sender domain asks for p=reject.
// +kubebuilder:validation:Enum=reject;deliver
type DMARCOnReject string

const (
	// DMARCReject refuses the message with 550 5.7.1, as the sender domain asks.
	DMARCReject DMARCOnReject = "reject"
	// DMARCDeliver accepts it, recording dmarc=fail in Authentication-Results.
	DMARCDeliver DMARCOnReject = "deliver"
)

// DMARCPolicy is how the MX treats DMARC results of inbound mail.
type DMARCPolicy struct {
	// OnReject is what happens to mail that fails DMARC when the sender domain publishes
	// p=reject: "reject" (the default) refuses it with 550 5.7.1, "deliver" accepts it with
	// dmarc=fail in its Authentication-Results header.
	// +optional
	OnReject DMARCOnReject `json:"onReject,omitempty"`
}

// AntispamSpec is the MX's defense against mail from known spam sources, as a Postfix
// administrator sets it up with reject_rbl_client.
type AntispamSpec struct {
	// DNSBLs are DNS blocklists (RFC 5782) the MX looks each client's address up in, once per
	// connection, before it accepts a recipient of this domain. Clients in a RelayPolicy's
	// trustedNetworks and authenticated users (submission) are never looked up, and a DNS failure
	// never refuses mail. None by default.
	// +optional
	// +listType=map
	// +listMapKey=zone
	// +kubebuilder:validation:MaxItems=16
	DNSBLs []DNSBL `json:"dnsbls,omitempty"`
}

// DNSBL is one DNS blocklist.
type DNSBL struct {
	// Zone is the list's DNS zone, e.g. "zen.spamhaus.org": the client 192.0.2.99 is listed when
	// 99.2.0.192.zen.spamhaus.org has an A record (IPv6 clients by their reversed nibbles).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=189
	// +kubebuilder:validation:Pattern="^([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])+[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.]?$"
	Zone string `json:"zone"`

	// Action is what happens to mail from a listed client: Reject (the default) refuses this
	// domain's recipients at RCPT with 554 5.7.1 naming the list, as Postfix's reject_rbl_client
	// does; Junk accepts the mail into the recipients' Junk folder.
	// +optional
	// +kubebuilder:default=Reject
	Action DNSBLAction `json:"action,omitempty"`

	// ReturnCodes are the answers that count as listed, as addresses ("127.0.0.2") or CIDRs
	// ("127.0.0.4/30"), all within 127.0.0.0/8. Empty (the default) counts every answer in
	// 127.0.0.0/8 except 127.255.255.0/24, the codes Spamhaus answers a refused query with
	// (logged as a warning, never counted).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=18
	// +kubebuilder:validation:XValidation:rule="self.all(c, (isIP(c) && ip(c).family() == 4 && cidr('127.0.0.0/8').containsIP(c)) || (isCIDR(c) && cidr(c).ip().family() == 4 && cidr('127.0.0.0/8').containsCIDR(c)))",message="each return code must be an IPv4 address or CIDR within 127.0.0.0/8, e.g. 127.0.0.2 or 127.0.0.4/30"
	ReturnCodes []string `json:"returnCodes,omitempty"`
}

// DNSBLAction is what the MX does with mail from a client a DNSBL lists.
// +kubebuilder:validation:Enum=Reject;Junk
type DNSBLAction string

const (
	// DNSBLReject refuses the domain's recipients at RCPT with 554 5.7.1.
	DNSBLReject DNSBLAction = "Reject"
	// DNSBLJunk delivers the mail into the recipients' Junk folder.
	DNSBLJunk DNSBLAction = "Junk"
)
