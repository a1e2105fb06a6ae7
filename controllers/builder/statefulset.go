package builder

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// Where the pod keeps its config and its data.
const (
	ManifestsDir = "/etc/kubemail/manifests"
	TLSDir       = "/etc/kubemail/tls"
	DKIMDir      = "/etc/kubemail/dkim"
	DataDir      = "/var/lib/kubemail"
	// Binary is the kubemail binary's path in the image (the Dockerfile puts it there).
	Binary = "/kubemail"

	// UID and GID of the mail server process: an unprivileged user (distroless "nonroot").
	runAsID = 65532
)

// DefaultStorageSize is the mailbox volume of a MailDomain that sets no spec.storage.size.
var DefaultStorageSize = resource.MustParse("1Gi")

// mailPort is one mail protocol: the Service port clients use and the unprivileged port the
// server listens on inside the pod, so the container needs no capabilities.
type mailPort struct {
	name      string
	port      int32 // Service port
	container int32 // container port
	flag      string
}

// mailPorts are the ports of a mail server, in Service order.
var mailPorts = []mailPort{
	{"smtp", 25, 2525, "--smtp-addr"},                // RFC 5321 MX
	{"submission", 587, 2587, "--submission-addr"},   // RFC 6409, STARTTLS
	{"submissions", 465, 2465, "--submissions-addr"}, // RFC 8314 implicit TLS
	{"imap", 143, 2143, "--imap-addr"},               // RFC 9051, STARTTLS
	{"imaps", 993, 2993, "--imaps-addr"},             // RFC 8314 implicit TLS
}

const healthPort = 8080

// Options are the operator-wide settings the builders need.
type Options struct {
	// Image is the mail server image of a MailDomain that names none: the operator's own.
	Image string
}

// BuildStatefulSet renders md's mail server: one replica for now (sharding mailboxes across pods
// comes later), its manifests directory projected from the ConfigMap and Secret, and the
// mailboxes on a persistent volume per pod.
func BuildStatefulSet(md *v1alpha1.MailDomain, opts Options) (*appsv1.StatefulSet, error) {
	image := md.Spec.Image
	if image == "" {
		image = opts.Image
	}
	if image == "" {
		return nil, fmt.Errorf("MailDomain %s/%s names no image and the operator has no default", md.Namespace, md.Name)
	}
	size := DefaultStorageSize
	var storageClass *string
	// Mail outlives its MailDomain unless the user asks otherwise.
	retention := appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
	}
	if s := md.Spec.Storage; s != nil {
		if s.Size != nil {
			size = *s.Size
		}
		storageClass = s.StorageClassName
		if s.WhenDeleted != "" {
			retention.WhenDeleted = s.WhenDeleted
		}
	}
	replicas := int32(1)
	sts := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: objectMeta(md, StatefulSetName(md)),
		Spec: appsv1.StatefulSetSpec{
			Replicas:                             &replicas,
			ServiceName:                          HeadlessServiceName(md),
			Selector:                             &metav1.LabelSelector{MatchLabels: SelectorLabels(md)},
			PodManagementPolicy:                  appsv1.ParallelPodManagement,
			PersistentVolumeClaimRetentionPolicy: &retention,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: Labels(md),
					// The health listener also serves the server's Prometheus metrics.
					Annotations: map[string]string{
						"prometheus.io/scrape": "true",
						"prometheus.io/port":   fmt.Sprint(healthPort),
						"prometheus.io/path":   "/metrics",
					},
				},
				Spec: podSpec(md, image),
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: SelectorLabels(md)},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: storageClass,
					Resources: corev1.VolumeResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceStorage: size},
					},
				},
			}},
		},
	}
	return sts, nil
}

func podSpec(md *v1alpha1.MailDomain, image string) corev1.PodSpec {
	yes, no := true, false
	id := int64(runAsID)
	grace := int64(60) // SMTP sessions finish their DATA before the server stops
	args := []string{
		"server",
		"--manifests=" + ManifestsDir,
		"--data-dir=" + DataDir,
		"--hostname=" + MailHost(md),
		fmt.Sprintf("--health-addr=:%d", healthPort),
		"--log-format=json",
	}
	// The operator's DKIM key, so that the server signs with the key whose record the
	// MailDomain's status tells the user to publish (the server would otherwise make its own).
	args = append(args, "--dkim-keys-dir="+DKIMDir, "--dkim-selector="+DKIMSelector)
	if md.Spec.TLS != nil {
		args = append(args, "--tls-cert="+TLSDir+"/"+corev1.TLSCertKey, "--tls-key="+TLSDir+"/"+corev1.TLSPrivateKeyKey)
	}
	var ports []corev1.ContainerPort
	for _, p := range mailPorts {
		args = append(args, fmt.Sprintf("%s=:%d", p.flag, p.container))
		ports = append(ports, corev1.ContainerPort{Name: p.name, ContainerPort: p.container, Protocol: corev1.ProtocolTCP})
	}
	ports = append(ports, corev1.ContainerPort{Name: "health", ContainerPort: healthPort, Protocol: corev1.ProtocolTCP})
	var resources corev1.ResourceRequirements
	if md.Spec.Resources != nil {
		resources = *md.Spec.Resources.DeepCopy()
	}
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString("health"), Scheme: corev1.URISchemeHTTP,
			}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			SuccessThreshold: 1,
			FailureThreshold: 3,
		}
	}
	mounts := []corev1.VolumeMount{
		{Name: "manifests", MountPath: ManifestsDir, ReadOnly: true},
		{Name: "data", MountPath: DataDir},
		{Name: "tmp", MountPath: "/tmp"},
		{Name: "dkim", MountPath: DKIMDir, ReadOnly: true},
	}
	keyMode := int32(0o440) // the private key: owner and fsGroup only
	volumes := []corev1.Volume{
		{Name: "manifests", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMapName(md)},
					Items:                []corev1.KeyToPath{{Key: ObjectsKey, Path: ObjectsKey}},
				}},
				{Secret: &corev1.SecretProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: SecretName(md)},
					Items:                []corev1.KeyToPath{{Key: PasswordsKey, Path: PasswordsKey}},
				}},
			},
		}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "dkim", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  DKIMSecretName(md),
			Items:       []corev1.KeyToPath{{Key: DKIMKeyKey, Path: DomainName(md) + ".key"}},
			DefaultMode: &keyMode,
		}}},
	}
	if md.Spec.TLS != nil {
		mounts = append(mounts, corev1.VolumeMount{Name: "tls", MountPath: TLSDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: md.Spec.TLS.SecretName,
			Items: []corev1.KeyToPath{
				{Key: corev1.TLSCertKey, Path: corev1.TLSCertKey},
				{Key: corev1.TLSPrivateKeyKey, Path: corev1.TLSPrivateKeyKey},
			},
		}}})
	}
	return corev1.PodSpec{
		AutomountServiceAccountToken:  &no,
		TerminationGracePeriodSeconds: &grace,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   &yes,
			RunAsUser:      &id,
			RunAsGroup:     &id,
			FSGroup:        &id,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:           "kubemail",
			Image:          image,
			Command:        []string{Binary},
			Args:           args,
			Ports:          ports,
			Resources:      resources,
			ReadinessProbe: probe("/readyz", 5),
			LivenessProbe:  probe("/healthz", 10),
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no,
				ReadOnlyRootFilesystem:   &yes,
				RunAsNonRoot:             &yes,
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			VolumeMounts: mounts,
		}},
		Volumes: volumes,
	}
}
