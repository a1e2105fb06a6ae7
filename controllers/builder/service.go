package builder

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// BuildClientService renders the Service that mail clients and other mail servers connect to:
// ports 25, 587, 465, 143 and 993 onto the server's unprivileged container ports, with the type,
// externalTrafficPolicy and annotations of spec.service.
func BuildClientService(md *v1alpha1.MailDomain) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(md, ClientServiceName(md)),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: SelectorLabels(md),
			Ports:    servicePorts(),
		},
	}
	if s := md.Spec.Service; s != nil {
		if s.Type != "" {
			svc.Spec.Type = s.Type
		}
		svc.Spec.ExternalTrafficPolicy = s.ExternalTrafficPolicy
		if len(s.Annotations) > 0 {
			svc.Annotations = map[string]string{}
			for k, v := range s.Annotations {
				svc.Annotations[k] = v
			}
		}
	}
	return svc
}

// BuildHeadlessService renders the StatefulSet's governing Service, which gives each pod a
// stable DNS name; it lists pods before they are ready so that peers can find them.
func BuildHeadlessService(md *v1alpha1.MailDomain) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(md, HeadlessServiceName(md)),
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeClusterIP,
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 SelectorLabels(md),
			Ports:                    servicePorts(),
			PublishNotReadyAddresses: true,
		},
	}
}

func servicePorts() []corev1.ServicePort {
	ports := make([]corev1.ServicePort, 0, len(mailPorts))
	for _, p := range mailPorts {
		ports = append(ports, corev1.ServicePort{
			Name:       p.name,
			Port:       p.port,
			TargetPort: intstr.FromString(p.name),
			Protocol:   corev1.ProtocolTCP,
		})
	}
	return ports
}
