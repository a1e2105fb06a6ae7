package builder

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// DKIM keys: one RSA key per MailDomain (RFC 6376; RSA rather than Ed25519, RFC 8463, because
// every verifier understands it), generated once by the operator and kept in a Secret.
const (
	DKIMKeyKey      = "dkim.key"
	DKIMSelectorKey = "selector"
	// DKIMSelector is the selector of the key: its TXT record is DKIMSelector._domainkey.DOMAIN.
	DKIMSelector = "kubemail"
	// DKIMKeyBits is the size of new keys (RFC 8301 3.2: at least 1024, 2048 recommended).
	DKIMKeyBits = 2048
)

// DKIMSecretName is the name of md's DKIM key Secret.
func DKIMSecretName(md *v1alpha1.MailDomain) string { return md.Name + "-dkim" }

// BuildDKIMSecret renders the Secret holding md's DKIM private key, keyPEM (a PKCS #8 PEM block).
// The operator makes the key once and passes the existing one on every later reconcile, so the
// published DNS record stays valid.
func BuildDKIMSecret(md *v1alpha1.MailDomain, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(md, DKIMSecretName(md)),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			DKIMKeyKey:      keyPEM,
			DKIMSelectorKey: []byte(DKIMSelector),
		},
	}
}

// EncodeDKIMKey renders a private key as the PEM BuildDKIMSecret stores.
func EncodeDKIMKey(key *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DKIMRecordValue returns the TXT record that publishes the public half of keyPEM
// (RFC 6376 3.6.1), or an error if keyPEM is not an RSA private key.
func DKIMRecordValue(keyPEM []byte) (string, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return "", errors.New("no PEM block in the DKIM key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("parsing the DKIM key: %w", err)
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return "", fmt.Errorf("the DKIM key is a %T, not an RSA key", key)
	}
	pub, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		return "", err
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub), nil
}
