package controllers

import (
	"context"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/mailserver/config"
)

// Field indexes on the manager's cache, so that an event on one object finds the objects that
// depend on it without listing a whole namespace.
const (
	// indexMailDomainDomain indexes MailDomains by spec.domain, normalised as Resolve does.
	indexMailDomainDomain = "spec.domain"
	// indexMailboxDomain indexes Mailboxes by the domain of spec.address.
	indexMailboxDomain = "spec.address.domain"
	// indexMailboxSecret indexes Mailboxes by spec.passwordSecretRef.name.
	indexMailboxSecret = "spec.passwordSecretRef.name"
	// indexMailDomainTLSSecret indexes MailDomains by spec.tls.secretName.
	indexMailDomainTLSSecret = "spec.tls.secretName"
	// indexMailGroupDomain indexes MailGroups by the domain of spec.address.
	indexMailGroupDomain = "spec.address.domain"
	// indexRelayPolicySecret indexes RelayPolicies by spec.smarthost.credentialsSecretRef.name.
	indexRelayPolicySecret = "spec.smarthost.credentialsSecretRef.name"
)

// normalDomain is a domain as Resolve compares it: lower case, without a trailing dot.
func normalDomain(d string) string { return strings.ToLower(strings.TrimSuffix(d, ".")) }

// mailboxDomain is the domain part of a Mailbox's primary address ("" if it has none).
func mailboxDomain(mb *v1alpha1.Mailbox) string {
	_, domain, ok := config.SplitAddress(mb.Spec.Address)
	if !ok {
		return ""
	}
	return domain
}

// servingDomains lists the MailDomains of namespace ns whose spec.domain is domain (normalised);
// none for domain "".
func servingDomains(ctx context.Context, c client.Reader, ns, domain string) ([]v1alpha1.MailDomain, error) {
	if domain == "" {
		return nil, nil
	}
	var domains v1alpha1.MailDomainList
	if err := c.List(ctx, &domains, client.InNamespace(ns), client.MatchingFields{indexMailDomainDomain: domain}); err != nil {
		return nil, fmt.Errorf("listing MailDomains: %w", err)
	}
	return domains.Items, nil
}

// domainNotFound is the DomainNotFound message of an address (a Mailbox's or a MailGroup's)
// whose domain no MailDomain of ns serves.
func domainNotFound(ns, address, domain string) string {
	return fmt.Sprintf("No MailDomain in namespace %s serves the domain of %s: create one with spec.domain %q.", ns, address, domain)
}

// SetupIndexes registers the field indexes the reconcilers look up.
func SetupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &v1alpha1.MailDomain{}, indexMailDomainDomain, func(o client.Object) []string {
		return []string{normalDomain(o.(*v1alpha1.MailDomain).Spec.Domain)}
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &v1alpha1.MailDomain{}, indexMailDomainTLSSecret, func(o client.Object) []string {
		if tls := o.(*v1alpha1.MailDomain).Spec.TLS; tls != nil {
			return []string{tls.SecretName}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &v1alpha1.Mailbox{}, indexMailboxDomain, func(o client.Object) []string {
		if d := mailboxDomain(o.(*v1alpha1.Mailbox)); d != "" {
			return []string{d}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &v1alpha1.RelayPolicy{}, indexRelayPolicySecret, func(o client.Object) []string {
		if name := smarthostSecret(o.(*v1alpha1.RelayPolicy)); name != "" {
			return []string{name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &v1alpha1.MailGroup{}, indexMailGroupDomain, func(o client.Object) []string {
		if d := mailGroupDomain(o.(*v1alpha1.MailGroup)); d != "" {
			return []string{d}
		}
		return nil
	}); err != nil {
		return err
	}
	return indexer.IndexField(ctx, &v1alpha1.Mailbox{}, indexMailboxSecret, func(o client.Object) []string {
		if name := o.(*v1alpha1.Mailbox).Spec.PasswordSecretRef.Name; name != "" {
			return []string{name}
		}
		return nil
	})
}
