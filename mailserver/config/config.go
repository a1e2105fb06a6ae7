// Package config is the mail server's runtime config: everything one `kubemail server` needs to
// know, resolved from the kubemail API objects and validated.
//
// The operator and the standalone server both call Resolve, so a manifest directory that works
// with `kubemail server --manifests DIR` works unchanged with `kubectl apply -f DIR`. The one
// thing a MailDomain's metadata carries is PurgeAnnotation, the addresses whose mail the server
// is to remove (Config.Purge).
//
// Resolve checks again what the CRD validates, so the standalone server, which has no API server
// in front of it, refuses the same objects, and names the field at fault (ObjectError.Field).
// spec.antispam.dnsbls becomes Domain.Antispam: each zone a DNS name (lower-cased, without its
// trailing dot, at most 189 characters so that a reversed IPv6 address fits in a name), listed
// once; action Reject (the default) or Junk; return codes IPv4 addresses or CIDRs within
// 127.0.0.0/8; at most MaxDNSBLs lists.
//
// MailGroups (distribution lists) become Config.Groups, resolved after the Mailboxes: the address
// in a served domain and nobody else's (no Mailbox's address or alias, no other group's; the
// first object in namespace/name order keeps it), acceptFrom Anyone (default), Members or
// Domain, 1 to MaxGroupExpansion members. A member in one of our domains must be a mailbox's
// address, alias or plus-address, or another group's address; other members are any dot-atom
// address (plus-addresses included). Nested groups are expanded at resolve time into
// Group.Expanded (local members as their mailbox's primary address, each address once); a loop
// ("group loop: a → b → a"), a nested group with errors, or more than MaxGroupExpansion
// addresses is an error on spec.members[i], the member where it starts. A group's bounce
// address is "local+bounces@domain" (Group.BounceAddress): Directory.Lookup delivers it into
// the domain's postmaster mailbox (postmaster@domain, an address or alias), and when the domain
// has none it is unknown like any other address.
//
// spec.autoReply becomes Mailbox.AutoReply: a body of 1 to MaxAutoReplyBody characters, a
// one-line subject of at most MaxAutoReplySubject, end after start, an interval of at least
// MinAutoReplyInterval (default DefaultAutoReplyInterval); package autoreply sends it.
package config

import (
	"strings"
	"time"
)

// DefaultMaxMessageSize is the size limit of a domain that sets none: 25 MiB.
const DefaultMaxMessageSize = 25 << 20

// DefaultMaxRecipients is the recipient limit of a domain that sets none (RFC 5321 4.5.3.1.8).
const DefaultMaxRecipients = 100

// Config is the resolved runtime config of one mail server.
type Config struct {
	// Domains served, sorted by name.
	Domains []Domain `json:"domains"`
	// Mailboxes, sorted by address.
	Mailboxes []Mailbox `json:"mailboxes"`
	// Groups are the MailGroups (distribution lists), sorted by address.
	Groups []Group `json:"groups,omitempty"`
	// RelayPolicies, in the order of their object names.
	RelayPolicies []RelayPolicy `json:"relayPolicies,omitempty"`
	// Purge lists the addresses, sorted, whose Maildir the server removes when it loads this
	// config, unless they are among Mailboxes (PurgeAnnotation says where they come from).
	Purge []string `json:"purge,omitempty"`
}

// Domain is one mail domain.
type Domain struct {
	// Name is the domain in lower case, e.g. "example.test".
	Name string `json:"name"`
	// MaxMessageSize is the largest message in bytes accepted for this domain.
	MaxMessageSize int64 `json:"maxMessageSize"`
	// MaxRecipients is the recipient limit of one transaction sent to this domain.
	MaxRecipients int `json:"maxRecipients"`
	// IgnoreDMARCReject accepts inbound mail that fails DMARC for a From: domain publishing
	// p=reject, recording the failure in the Authentication-Results header only. The zero value
	// (the default) enforces the policy: such mail is refused with 550 5.7.1 (RFC 7489 6.6.4).
	IgnoreDMARCReject bool `json:"ignoreDMARCReject,omitempty"`
	// Antispam is spec.antispam; nil when the domain has none. (A pointer keeps Domain
	// comparable.)
	Antispam *Antispam `json:"antispam,omitempty"`
}

// Antispam is a domain's defense against mail from known spam sources.
type Antispam struct {
	// DNSBLs are the blocklists the MX checks a client against before it accepts a recipient
	// of the domain, in the order declared.
	DNSBLs []DNSBL `json:"dnsbls,omitempty"`
}

// DNSBLs returns the domain's blocklists (none when it has no Antispam).
func (d *Domain) DNSBLs() []DNSBL {
	if d.Antispam == nil {
		return nil
	}
	return d.Antispam.DNSBLs
}

// Mailbox is one mailbox.
type Mailbox struct {
	// Address is the primary address in lower case, "local@domain".
	Address string `json:"address"`
	// Aliases are further addresses, lower case, delivered into this mailbox.
	Aliases []string `json:"aliases,omitempty"`
	// PasswordHash is an argon2id or bcrypt hash in its standard string form.
	PasswordHash string `json:"passwordHash"`
	// Quota is the most mail, in bytes, the mailbox may hold in all its folders; 0 is no limit.
	Quota int64 `json:"quota,omitempty"`
	// AutoReply is the mailbox's out-of-office reply (spec.autoReply), nil when it has none.
	AutoReply *AutoReply `json:"autoReply,omitempty"`
}

// RelayPolicy is a resolved RelayPolicy object; the outbound queue acts on it.
type RelayPolicy struct {
	Name string `json:"name"`
	// Domains are the sender domains it applies to; empty means all.
	Domains []string `json:"domains,omitempty"`
	// TrustedNetworks are CIDRs whose clients may relay without AUTH.
	TrustedNetworks []string   `json:"trustedNetworks,omitempty"`
	Smarthost       *Smarthost `json:"smarthost,omitempty"`
	// Routes are static next hops for recipient domains, for all outbound mail (whatever
	// Domains says); none of them is a domain of ours.
	Routes []Route `json:"routes,omitempty"`
	Retry  Retry   `json:"retry,omitempty"`
	// MessagesPerMinutePerSender bounds submissions per authenticated sender; 0 is no limit.
	MessagesPerMinutePerSender int `json:"messagesPerMinutePerSender,omitempty"`
}

// Smarthost is a relay for outbound mail, with its credentials resolved from their Secret.
type Smarthost struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	TLS      string `json:"tls"` // "starttls", "tls" or "none"
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// Route sends the mail for its recipient domains over SMTP to Host:Port instead of their MX
// hosts (opportunistic STARTTLS, as towards MX hosts).
type Route struct {
	// Domains are recipient domains in lower case, without a trailing dot.
	Domains []string `json:"domains"`
	// Host is a host name or an IP address.
	Host string `json:"host"`
	// Port is 25 unless the RelayPolicy set another.
	Port int `json:"port"`
}

// DefaultRoutePort is the port of a route that names none, SMTP's.
const DefaultRoutePort = 25

// Retry is a delivery schedule; a zero field takes the queue's default.
type Retry struct {
	InitialInterval   time.Duration `json:"initialInterval,omitempty"`
	MaxInterval       time.Duration `json:"maxInterval,omitempty"`
	Lifetime          time.Duration `json:"lifetime,omitempty"`
	DelayWarningAfter time.Duration `json:"delayWarningAfter,omitempty"`
}

// SplitAddress splits "local@domain" at its last '@' and lower-cases both halves.
func SplitAddress(addr string) (local, domain string, ok bool) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", false
	}
	return strings.ToLower(addr[:at]), strings.ToLower(addr[at+1:]), true
}
