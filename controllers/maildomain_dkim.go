package controllers

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
)

// dkimPhase keeps the MailDomain's DKIM key: generated once, then read back from its Secret on
// every reconcile, so the DNS record published for it stays valid. A key that does not parse
// (someone edited the Secret) is reported, not replaced: replacing it would break the record.
func (r *MailDomainReconciler) dkimPhase(ctx context.Context, st *domainState) error {
	var existing corev1.Secret
	err := r.Get(ctx, client.ObjectKey{Namespace: st.md.Namespace, Name: kmbuilder.DKIMSecretName(st.md)}, &existing)
	var keyPEM []byte
	switch {
	case apierrors.IsNotFound(err):
		key, err := rsa.GenerateKey(rand.Reader, kmbuilder.DKIMKeyBits)
		if err != nil {
			return fmt.Errorf("generating the DKIM key: %w", err)
		}
		if keyPEM, err = kmbuilder.EncodeDKIMKey(key); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		keyPEM = existing.Data[kmbuilder.DKIMKeyKey]
	}
	value, err := kmbuilder.DKIMRecordValue(keyPEM)
	if err != nil {
		return invalid("Secret %s: %v (delete the Secret to have a new key made)", kmbuilder.DKIMSecretName(st.md), err)
	}
	st.dkim = value
	return r.apply(ctx, st, kmbuilder.BuildDKIMSecret(st.md, keyPEM), &corev1.Secret{})
}
