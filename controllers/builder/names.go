package builder

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// Labels every child object carries; SelectorLabels is the subset the StatefulSet and the
// Services select pods by, which must never change for an existing MailDomain.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"

	// ManagedBy is the value of LabelManagedBy on every object the operator owns.
	ManagedBy = "kubemail-operator"
)

// Names of a MailDomain's children. A MailDomain's name is at most 52 characters (the CRD
// enforces it), so every child name stays a valid DNS label and StatefulSet pod names fit.
func StatefulSetName(md *v1alpha1.MailDomain) string   { return md.Name }
func ClientServiceName(md *v1alpha1.MailDomain) string { return md.Name }
func HeadlessServiceName(md *v1alpha1.MailDomain) string {
	return md.Name + "-headless"
}
func ConfigMapName(md *v1alpha1.MailDomain) string { return md.Name + "-manifests" }
func SecretName(md *v1alpha1.MailDomain) string    { return md.Name + "-passwords" }

// SelectorLabels select the pods of md's mail server.
func SelectorLabels(md *v1alpha1.MailDomain) map[string]string {
	return map[string]string{LabelName: "kubemail", LabelInstance: md.Name}
}

// Labels are the labels of every child of md.
func Labels(md *v1alpha1.MailDomain) map[string]string {
	l := SelectorLabels(md)
	l[LabelComponent] = "mail-server"
	l[LabelManagedBy] = ManagedBy
	return l
}

// objectMeta is the metadata of a child of md: its name, md's namespace, labels, and md as the
// controlling owner, so deleting md deletes the child.
func objectMeta(md *v1alpha1.MailDomain, name string) metav1.ObjectMeta {
	controller := true
	block := true
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: md.Namespace,
		Labels:    Labels(md),
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion:         v1alpha1.GroupVersion.String(),
			Kind:               "MailDomain",
			Name:               md.Name,
			UID:                md.UID,
			Controller:         &controller,
			BlockOwnerDeletion: &block,
		}},
	}
}
