package config

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// Objects are the API objects one mail server is configured from, as `kubectl get` would return
// them: MailDomains, Mailboxes, MailGroups, RelayPolicies and the Secrets they reference.
type Objects struct {
	MailDomains   []v1alpha1.MailDomain
	Mailboxes     []v1alpha1.Mailbox
	MailGroups    []v1alpha1.MailGroup
	RelayPolicies []v1alpha1.RelayPolicy
	Secrets       []corev1.Secret
}

// PasswordHasher turns a password found in a Secret into the hash kept in the runtime config.
// key identifies the Mailbox, so a hasher may reuse an earlier hash of the same password.
type PasswordHasher func(key, password string) (string, error)

// ObjectError is one problem with one object, naming the field at fault.
type ObjectError struct {
	Kind, Namespace, Name string
	Field                 string // e.g. "spec.passwordSecretRef.key"
	Message               string
}

func (e *ObjectError) Error() string {
	return fmt.Sprintf("%s %q: %s: %s", e.Kind, qualified(e.Namespace, e.Name), e.Field, e.Message)
}

// Errors is every ObjectError Resolve found. Use errors.As to get at them.
type Errors []*ObjectError

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Resolve turns API objects into the runtime config. An object with a problem is left out of the
// config and reported in the returned Errors (nil when there is none), so the operator can mark
// it not Ready while the others still serve; the standalone server refuses to start on any.
// Secrets are looked up in the namespace of the object that references them.
func Resolve(objs Objects, hash PasswordHasher) (*Config, error) {
	r := resolver{cfg: &Config{}, secrets: map[string]*corev1.Secret{}, seen: map[string]string{}}
	for i := range objs.Secrets {
		s := &objs.Secrets[i]
		r.secrets[qualified(s.Namespace, s.Name)] = s
	}
	domains := append([]v1alpha1.MailDomain(nil), objs.MailDomains...)
	sort.Slice(domains, func(i, j int) bool { return domains[i].Name < domains[j].Name })
	for i := range domains {
		r.domain(&domains[i])
	}
	mailboxes := append([]v1alpha1.Mailbox(nil), objs.Mailboxes...)
	sort.Slice(mailboxes, func(i, j int) bool {
		return qualified(mailboxes[i].Namespace, mailboxes[i].Name) < qualified(mailboxes[j].Namespace, mailboxes[j].Name)
	})
	for i := range mailboxes {
		r.mailbox(&mailboxes[i], hash)
	}
	r.groups(objs.MailGroups)
	policies := append([]v1alpha1.RelayPolicy(nil), objs.RelayPolicies...)
	sort.Slice(policies, func(i, j int) bool { return policies[i].Name < policies[j].Name })
	for i := range policies {
		r.relayPolicy(&policies[i])
	}
	sort.Slice(r.cfg.Domains, func(i, j int) bool { return r.cfg.Domains[i].Name < r.cfg.Domains[j].Name })
	sort.Slice(r.cfg.Mailboxes, func(i, j int) bool { return r.cfg.Mailboxes[i].Address < r.cfg.Mailboxes[j].Address })
	r.cfg.Purge = sortedUnique(r.cfg.Purge)
	if len(r.errs) > 0 {
		return r.cfg, r.errs
	}
	return r.cfg, nil
}

type resolver struct {
	cfg     *Config
	secrets map[string]*corev1.Secret
	seen    map[string]string // address -> "Mailbox ns/name" or "MailGroup ns/name" that claimed it
	errs    Errors
}

func (r *resolver) fail(kind, ns, name, field, format string, args ...any) {
	r.errs = append(r.errs, &ObjectError{Kind: kind, Namespace: ns, Name: name, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (r *resolver) domain(md *v1alpha1.MailDomain) {
	fail := func(field, format string, args ...any) {
		r.fail("MailDomain", md.Namespace, md.Name, field, format, args...)
	}
	name := strings.ToLower(strings.TrimSuffix(md.Spec.Domain, "."))
	if err := CheckDomain(name); err != nil {
		fail("spec.domain", "%v", err)
		return
	}
	d := Domain{Name: name, MaxMessageSize: DefaultMaxMessageSize, MaxRecipients: DefaultMaxRecipients}
	if q := md.Spec.MaxMessageSize; q != nil {
		size, ok := q.AsInt64()
		if !ok || size < 1024 || size > 1<<30 {
			fail("spec.maxMessageSize", "%s is outside 1Ki..1Gi", q.String())
			return
		}
		d.MaxMessageSize = size
	}
	if n := md.Spec.MaxRecipients; n != nil {
		if *n < 1 || *n > 10000 {
			fail("spec.maxRecipients", "%d is outside 1..10000", *n)
			return
		}
		d.MaxRecipients = int(*n)
	}
	if p := md.Spec.DMARC; p != nil {
		switch p.OnReject {
		case "", v1alpha1.DMARCReject:
		case v1alpha1.DMARCDeliver:
			d.IgnoreDMARCReject = true
		default:
			fail("spec.dmarc.onReject", "%q is not one of reject, deliver", p.OnReject)
			return
		}
	}
	lists, field, err := resolveAntispam(md.Spec.Antispam)
	if err != nil {
		fail(field, "%v", err)
		return
	}
	if len(lists) > 0 {
		d.Antispam = &Antispam{DNSBLs: lists}
	}
	for _, other := range r.cfg.Domains {
		if other.Name == name {
			fail("spec.domain", "domain %q is already declared by another MailDomain", name)
			return
		}
	}
	purge, err := purgeList(md, name)
	if err != nil {
		fail(purgeField, "%v", err)
		return
	}
	r.cfg.Domains = append(r.cfg.Domains, d)
	r.cfg.Purge = append(r.cfg.Purge, purge...)
}

func (r *resolver) hasDomain(name string) bool {
	for _, d := range r.cfg.Domains {
		if d.Name == name {
			return true
		}
	}
	return false
}

func (r *resolver) mailbox(mb *v1alpha1.Mailbox, hash PasswordHasher) {
	key := qualified(mb.Namespace, mb.Name)
	fail := func(field, format string, args ...any) {
		r.fail("Mailbox", mb.Namespace, mb.Name, field, format, args...)
	}
	addr, err := r.localAddress(mb.Spec.Address)
	if err != nil {
		fail("spec.address", "%v", err)
		return
	}
	addrs := []string{addr}
	var aliases []string
	for i, a := range mb.Spec.Aliases {
		alias, err := r.localAddress(a)
		if err != nil {
			fail(fmt.Sprintf("spec.aliases[%d]", i), "%v", err)
			return
		}
		if !contains(addrs, alias) {
			addrs = append(addrs, alias)
			aliases = append(aliases, alias)
		}
	}
	for i, a := range addrs {
		if owner, taken := r.seen[a]; taken {
			field := "spec.address"
			if i > 0 {
				field = "spec.aliases"
			}
			fail(field, "address %q is already taken by %s", a, owner)
			return
		}
	}
	ref := mb.Spec.PasswordSecretRef
	secret := r.secrets[qualified(mb.Namespace, ref.Name)]
	if ref.Name == "" || ref.Key == "" {
		fail("spec.passwordSecretRef", "name and key are required")
		return
	}
	if secret == nil {
		fail("spec.passwordSecretRef.name", "Secret %q not found", qualified(mb.Namespace, ref.Name))
		return
	}
	password, ok := secretValue(secret, ref.Key)
	if !ok {
		fail("spec.passwordSecretRef.key", "Secret %q has no key %q", qualified(mb.Namespace, ref.Name), ref.Key)
		return
	}
	password = strings.TrimRight(password, "\r\n")
	if password == "" {
		fail("spec.passwordSecretRef.key", "Secret %q key %q is empty", qualified(mb.Namespace, ref.Name), ref.Key)
		return
	}
	hashed, err := hash(key, password)
	if err != nil {
		fail("spec.passwordSecretRef", "%v", err)
		return
	}
	switch p := mb.Spec.ReclaimPolicy; p {
	case "", v1alpha1.MailboxRetain, v1alpha1.MailboxDelete:
	default:
		fail("spec.reclaimPolicy", "%q is neither Retain nor Delete", p)
		return
	}
	var quota int64
	if q := mb.Spec.Quota; q != nil {
		n, ok := q.AsInt64()
		if !ok || n < 0 {
			fail("spec.quota", "%s is not a size in bytes", q.String())
			return
		}
		quota = n
	}
	autoReply, field, err := resolveAutoReply(mb.Spec.AutoReply)
	if err != nil {
		fail(field, "%v", err)
		return
	}
	for _, a := range addrs {
		r.seen[a] = "Mailbox " + key
	}
	r.cfg.Mailboxes = append(r.cfg.Mailboxes, Mailbox{Address: addr, Aliases: aliases, PasswordHash: hashed, Quota: quota, AutoReply: autoReply})
}

// localAddress checks that addr is a mailbox address in one of the resolved domains.
func (r *resolver) localAddress(addr string) (string, error) {
	local, domain, err := CheckAddress(addr)
	if err != nil {
		return "", err
	}
	if !r.hasDomain(domain) {
		return "", fmt.Errorf("domain %q of %q is not served by any MailDomain", domain, addr)
	}
	return local + "@" + domain, nil
}

func (r *resolver) relayPolicy(rp *v1alpha1.RelayPolicy) {
	fail := func(field, format string, args ...any) {
		r.fail("RelayPolicy", rp.Namespace, rp.Name, field, format, args...)
	}
	p := RelayPolicy{Name: rp.Name}
	for i, d := range rp.Spec.Domains {
		d = strings.ToLower(d)
		if !r.hasDomain(d) {
			fail(fmt.Sprintf("spec.domains[%d]", i), "domain %q is not served by any MailDomain", d)
			return
		}
		p.Domains = append(p.Domains, d)
	}
	for i, n := range rp.Spec.TrustedNetworks {
		prefix, err := netip.ParsePrefix(n)
		if err != nil {
			fail(fmt.Sprintf("spec.trustedNetworks[%d]", i), "%q is not a CIDR such as 10.0.0.0/8", n)
			return
		}
		p.TrustedNetworks = append(p.TrustedNetworks, prefix.Masked().String())
	}
	if sh := rp.Spec.Smarthost; sh != nil {
		h := &Smarthost{Host: sh.Host, Port: int(sh.Port), TLS: string(sh.TLS)}
		if h.Port == 0 {
			h.Port = 587
		}
		if h.TLS == "" {
			h.TLS = string(v1alpha1.SmarthostSTARTTLS)
		}
		if h.Host == "" {
			fail("spec.smarthost.host", "must not be empty")
			return
		}
		if h.Port < 1 || h.Port > 65535 {
			fail("spec.smarthost.port", "%d is not a port number", h.Port)
			return
		}
		switch v1alpha1.SmarthostTLS(h.TLS) {
		case v1alpha1.SmarthostSTARTTLS, v1alpha1.SmarthostTLSOnly, v1alpha1.SmarthostNoTLS:
		default:
			fail("spec.smarthost.tls", "%q is not one of starttls, tls, none", h.TLS)
			return
		}
		if ref := sh.CredentialsSecretRef; ref != nil {
			secret := r.secrets[qualified(rp.Namespace, ref.Name)]
			if secret == nil {
				fail("spec.smarthost.credentialsSecretRef.name", "Secret %q not found", qualified(rp.Namespace, ref.Name))
				return
			}
			var ok1, ok2 bool
			h.Username, ok1 = secretValue(secret, "username")
			h.Password, ok2 = secretValue(secret, "password")
			if !ok1 || !ok2 {
				fail("spec.smarthost.credentialsSecretRef.name", "Secret %q needs the keys username and password", qualified(rp.Namespace, ref.Name))
				return
			}
		}
		p.Smarthost = h
	}
	routes, ok := r.routes(rp.Spec.Routes, fail)
	if !ok {
		return
	}
	p.Routes = routes
	if rt := rp.Spec.Retry; rt != nil {
		for _, d := range []struct {
			field string
			in    *metav1.Duration
			out   *time.Duration
		}{
			{"spec.retry.initialInterval", rt.InitialInterval, &p.Retry.InitialInterval},
			{"spec.retry.maxInterval", rt.MaxInterval, &p.Retry.MaxInterval},
			{"spec.retry.lifetime", rt.Lifetime, &p.Retry.Lifetime},
			{"spec.retry.delayWarningAfter", rt.DelayWarningAfter, &p.Retry.DelayWarningAfter},
		} {
			if d.in == nil {
				continue
			}
			if d.in.Duration <= 0 {
				fail(d.field, "%s must be positive", d.in.Duration)
				return
			}
			*d.out = d.in.Duration
		}
	}
	if rl := rp.Spec.RateLimit; rl != nil {
		p.MessagesPerMinutePerSender = int(rl.MessagesPerMinutePerSender)
	}
	r.cfg.RelayPolicies = append(r.cfg.RelayPolicies, p)
}

// secretValue reads key from data, or from stringData as `kubectl apply` would merge it.
func secretValue(s *corev1.Secret, key string) (string, bool) {
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

func qualified(ns, name string) string {
	if ns == "" {
		ns = "default"
	}
	return ns + "/" + name
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var errEmpty = errors.New("must not be empty")
