package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kubemail/kubemail/api/v1alpha1"
	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
)

// MailDomainReconciler runs a mail server for each MailDomain.
type MailDomainReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Options are passed to the builders (the default image).
	Options kmbuilder.Options
	// DNSCheck configures the check of status.dnsRecords (condition DNSPublished); its zero
	// value is off.
	DNSCheck DNSCheckOptions

	hashes *passwordHashes
	purges purgeLists
	dns    *dnsChecks
}

// +kubebuilder:rbac:groups=mail.kubemail.io,resources=maildomains;mailboxes;mailgroups;relaypolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=mail.kubemail.io,resources=mailboxes,verbs=patch
// +kubebuilder:rbac:groups=mail.kubemail.io,resources=maildomains/status;mailboxes/status;mailgroups/status;relaypolicies/status,verbs=get;patch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=services;configmaps;secrets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// phase is one ordered step of a reconcile; its name becomes the reason when it fails.
type phase struct {
	name string
	run  func(ctx context.Context, st *domainState) error
}

// domainState is what one reconcile of a MailDomain learns and carries between phases.
type domainState struct {
	md     *v1alpha1.MailDomain
	config *domainConfig
	sts    *appsv1.StatefulSet // as the API server has it after the StatefulSet phase
	svc    *corev1.Service     // the client Service, likewise
	dkim   string              // the DKIM TXT record value
	wrote  []string            // children written, for the log

	objects   string // objects.yaml as applied in the ConfigMap
	passwords []byte // passwords.yaml as applied in the Secret
}

// Reconcile loads the MailDomain, runs the phases in order and writes its status.
func (r *MailDomainReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	md := &v1alpha1.MailDomain{}
	if err := r.Get(ctx, req.NamespacedName, md); err != nil {
		if apierrors.IsNotFound(err) {
			r.purges.forget(req.NamespacedName)
			r.dns.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !md.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // children go with their owner reference
	}
	st := &domainState{md: md}
	phases := []phase{
		{"Resolve", r.resolvePhase},
		{"Secret", r.secretPhase},
		{"DKIM", r.dkimPhase},
		{"ConfigMap", r.configMapPhase},
		{"Pods", r.podsPhase},
		{"Reclaim", r.reclaimPhase},
		{"Services", r.servicesPhase},
		{"TLS", r.tlsPhase},
		{"StatefulSet", r.statefulSetPhase},
	}
	for _, p := range phases {
		if err := p.run(ctx, st); err != nil {
			return r.failed(ctx, st, p.name, err)
		}
	}
	if len(st.wrote) > 0 {
		log.FromContext(ctx).Info("Applied mail server objects", "objects", st.wrote)
	}
	status := domainStatus(st)
	// DNS never decides Ready: it only sets its own condition, from a check in the background.
	next := r.dns.observe(ctx, md, &status)
	recordTransitions(r.Recorder, md, md.Status.Conditions, status.Conditions)
	return ctrl.Result{RequeueAfter: next}, r.writeStatus(ctx, md, status)
}

// userError is a problem the user has to fix: retrying does not help, an edit does (and the
// edit's event brings the next reconcile). Reason becomes the Ready condition's reason.
type userError struct {
	reason string
	err    error
}

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }

func invalid(format string, args ...any) error {
	return &userError{reason: "InvalidSpec", err: fmt.Errorf(format, args...)}
}

func (r *MailDomainReconciler) resolvePhase(ctx context.Context, st *domainState) error {
	dc, err := r.resolveDomain(ctx, st.md)
	if err != nil {
		return err
	}
	if dc.domainErr != nil {
		return invalid("%s: %s", dc.domainErr.Field, dc.domainErr.Message)
	}
	st.config = dc
	return nil
}

func (r *MailDomainReconciler) secretPhase(ctx context.Context, st *domainState) error {
	s, err := kmbuilder.BuildSecret(st.config.server)
	if err != nil {
		return err
	}
	st.passwords = s.Data[kmbuilder.PasswordsKey]
	return r.apply(ctx, st, s, &corev1.Secret{})
}

func (r *MailDomainReconciler) configMapPhase(ctx context.Context, st *domainState) error {
	cm, err := kmbuilder.BuildConfigMap(st.config.server)
	if err != nil {
		return err
	}
	st.objects = cm.Data[kmbuilder.ObjectsKey]
	if err := r.apply(ctx, st, cm, &corev1.ConfigMap{}); err != nil {
		return err
	}
	r.purges.set(st.md, st.config.server.Purge)
	return nil
}

func (r *MailDomainReconciler) servicesPhase(ctx context.Context, st *domainState) error {
	if err := r.apply(ctx, st, kmbuilder.BuildHeadlessService(st.md), &corev1.Service{}); err != nil {
		return err
	}
	current := &corev1.Service{}
	if err := r.apply(ctx, st, kmbuilder.BuildClientService(st.md), current); err != nil {
		return err
	}
	st.svc = current
	return nil
}

// tlsPhase checks the certificate Secret the pod will mount: a missing Secret would leave the
// pod stuck before it starts, with the reason only in its events.
func (r *MailDomainReconciler) tlsPhase(ctx context.Context, st *domainState) error {
	tls := st.md.Spec.TLS
	if tls == nil {
		return nil
	}
	var s corev1.Secret
	err := r.Get(ctx, client.ObjectKey{Namespace: st.md.Namespace, Name: tls.SecretName}, &s)
	if apierrors.IsNotFound(err) {
		return &userError{reason: "TLSSecretNotFound", err: fmt.Errorf("Secret %s/%s of spec.tls.secretName is not found: create it, e.g. with a cert-manager Certificate for %s",
			st.md.Namespace, tls.SecretName, kmbuilder.MailHost(st.md))}
	}
	if err != nil {
		return err
	}
	for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		if len(s.Data[key]) == 0 {
			return &userError{reason: "TLSSecretInvalid", err: fmt.Errorf("Secret %s/%s of spec.tls.secretName has no %s", st.md.Namespace, tls.SecretName, key)}
		}
	}
	return nil
}

func (r *MailDomainReconciler) statefulSetPhase(ctx context.Context, st *domainState) error {
	sts, err := kmbuilder.BuildStatefulSet(st.md, r.Options)
	if err != nil {
		return invalid("%v", err)
	}
	current := &appsv1.StatefulSet{}
	if err := r.apply(ctx, st, sts, current); err != nil {
		return err
	}
	st.sts = current
	return nil
}

func (r *MailDomainReconciler) apply(ctx context.Context, st *domainState, desired, current client.Object) error {
	wrote, err := applyChild(ctx, r.Client, st.md, desired, current)
	if err != nil {
		return fmt.Errorf("applying %T %s: %w", desired, desired.GetName(), err)
	}
	if wrote {
		st.wrote = append(st.wrote, fmt.Sprintf("%s/%s", desired.GetObjectKind().GroupVersionKind().Kind, desired.GetName()))
	}
	return nil
}

// failed records a failed phase in the status: Ready=False with the phase as the reason.
// Problems only the user can fix are not retried; the edit that fixes them triggers a reconcile.
func (r *MailDomainReconciler) failed(ctx context.Context, st *domainState, phase string, err error) (ctrl.Result, error) {
	reason := phase + "Failed"
	var user *userError
	switch {
	case errors.As(err, &user):
		reason = user.reason
	case errors.Is(err, errNotOwned):
		reason = "NameConflict"
	}
	r.Recorder.Eventf(st.md, nil, corev1.EventTypeWarning, reason, phase, "%v", err)
	retrying := user == nil && !errors.Is(err, errNotOwned)
	if serr := r.writeStatus(ctx, st.md, failedStatus(st.md, reason, err, retrying)); serr != nil {
		return ctrl.Result{}, errors.Join(err, serr)
	}
	if user != nil {
		log.FromContext(ctx).Info("MailDomain not applied", "reason", reason, "err", err.Error())
		return ctrl.Result{}, nil
	}
	if errors.Is(err, errNotOwned) {
		// The other object's deletion is no event of ours: look again now and then.
		log.FromContext(ctx).Info("MailDomain not applied", "reason", reason, "err", err.Error())
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	return ctrl.Result{}, err
}

// specOrMetadataChanged passes creations, deletions, and updates of the spec (generation),
// labels or annotations.
var specOrMetadataChanged = predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{})

// SetupWithManager watches MailDomains, their children, the Mailboxes, Secrets and
// RelayPolicies their config is made of, and the other MailDomains it routes to.
func (r *MailDomainReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.hashes == nil {
		r.hashes = newPasswordHashes()
	}
	r.dns = newDNSChecks(r.DNSCheck)
	b := ctrl.NewControllerManagedBy(mgr)
	if r.dns != nil {
		// A MailDomain whose DNS check has ended.
		b = b.WatchesRawSource(r.dns.source())
	}
	return b.
		// Our own status writes change neither generation nor metadata: no reconcile for them.
		For(&v1alpha1.MailDomain{}, builder.WithPredicates(specOrMetadataChanged)).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.Secret{}).
		// The mail server's pods, cached by CacheOptions' label selector: a new one gets the
		// config hash annotation (podsPhase).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(domainOfPod), builder.WithPredicates(podCreated)).
		Watches(&v1alpha1.Mailbox{}, handler.EnqueueRequestsFromMapFunc(r.domainsOfMailbox)).
		Watches(&v1alpha1.MailGroup{}, handler.EnqueueRequestsFromMapFunc(r.domainsOfGroup)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.domainsOfSecret)).
		Watches(&v1alpha1.RelayPolicy{}, handler.EnqueueRequestsFromMapFunc(r.domainsOfPolicy)).
		// Each domain's config routes to every other MailDomain: a domain that comes or goes
		// changes the others' ConfigMaps.
		Watches(&v1alpha1.MailDomain{}, handler.EnqueueRequestsFromMapFunc(r.otherDomains), builder.WithPredicates(domainCameOrWent)).
		Named("maildomain").
		// Hashing new passwords is CPU-bound: let two domains hash at once.
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(r)
}
