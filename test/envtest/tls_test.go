//go:build envtest

package envtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
	"github.com/kubemail/kubemail/mailserver/tlsutil"
)

// TestCertificateFromSecret references a certificate Secret before it exists (the status says
// so), then creates it as cert-manager would, runs the rendered pod and checks that IMAPS
// presents that certificate, and that a renewed one is served without a restart.
func TestCertificateFromSecret(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	md := mailDomain(ns, "tls-test", "tls.test")
	md.Spec.TLS = &v1alpha1.TLSSpec{SecretName: "mail-tls"}
	must(t, k8s.Create(ctx, md))
	eventually(t, "MailDomain says the certificate Secret is missing", func() error {
		must(t, get(ns, "tls-test", md))
		return condition(md.Status.Conditions, md.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, "TLSSecretNotFound")
	})

	certPEM, keyPEM, err := tlsutil.Generate("mail.tls.test", time.Hour)
	must(t, err)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mail-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}
	must(t, k8s.Create(ctx, secret))
	eventually(t, "MailDomain goes on once the Secret exists", func() error {
		must(t, get(ns, "tls-test", md))
		return condition(md.Status.Conditions, md.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, controllers.ReasonPodsNotReady)
	})

	sts := &appsv1.StatefulSet{}
	must(t, get(ns, "tls-test", sts))
	spec := sts.Spec.Template.Spec
	p := startPod(t, spec, spec.Containers[0], podVolumes(t, ns, spec))
	eventually(t, "IMAPS presents the certificate of the Secret", func() error {
		return servesCertificate(p.ports["imaps"], certPEM)
	})

	renewed, renewedKey, err := tlsutil.Generate("mail.tls.test", 2*time.Hour)
	must(t, err)
	secret.Data = map[string][]byte{corev1.TLSCertKey: renewed, corev1.TLSPrivateKeyKey: renewedKey}
	must(t, k8s.Update(ctx, secret))
	must(t, projectFiles(p.mounts["tls"], podVolumes(t, ns, spec)["tls"])) // the kubelet's sync
	eventually(t, "IMAPS presents the renewed certificate without a restart", func() error {
		return servesCertificate(p.ports["imaps"], renewed)
	})
}

// servesCertificate checks that the TLS server at addr presents the certificate in certPEM.
func servesCertificate(addr string, certPEM []byte) error {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	defer conn.Close()
	block, _ := pem.Decode(certPEM)
	if got := conn.ConnectionState().PeerCertificates; len(got) == 0 || !bytes.Equal(got[0].Raw, block.Bytes) {
		return fmt.Errorf("%s presents another certificate", addr)
	}
	return nil
}
