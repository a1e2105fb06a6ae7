package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubemail/kubemail/api/v1alpha1"
	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/mailserver/config"
)

// MailboxFinalizer is on every Mailbox with spec.reclaimPolicy: Delete, so that the operator
// sees its deletion and can tell the mail server to remove its mail.
//
// The operator cannot reach the mail volume; the server can. So a deleted Delete-policy Mailbox
// works like this: its MailDomain's reconcile leaves it out of the config at once (its
// credentials go with the next ConfigMap/Secret update, like any deleted Mailbox's), adds its
// address to the purge list of the config (config.PurgeAnnotation on the MailDomain in
// objects.yaml), applies the ConfigMap, and only then removes the finalizer, so the address is
// recorded before the Mailbox object goes. `kubemail server` removes the Maildir of every
// listed address that is not a current mailbox when it loads the config (mailserver/server).
// The list is kept in the ConfigMap itself (read back with builder.PurgeList, and remembered
// between a write and the cache seeing it) and an address leaves it when a Mailbox with that
// address exists again, whose mail is then its own. Retain (the default) has no finalizer and
// keeps the mail. The MailboxReconciler adds and removes the finalizer as the policy changes,
// and removes it from a deleted Mailbox no MailDomain serves (there is no server to tell) or
// whose policy is no longer Delete. A Mailbox whose MailDomain cannot be rendered (its status
// says why) keeps its finalizer until the MailDomain is fixed or deleted.
const MailboxFinalizer = "mail.kubemail.io/reclaim-mail"

// purgeLists remembers the purge list last applied to each MailDomain's ConfigMap until the
// cache shows it: a reconcile right after the write, started by the finalizer's removal, must
// not drop an address because it read the ConfigMap from before.
type purgeLists struct {
	mu      sync.Mutex
	domains map[types.NamespacedName]purgeList
}

type purgeList struct {
	uid   types.UID // of the MailDomain, so a new one of the same name starts empty
	addrs []string
}

func (p *purgeLists) get(md *v1alpha1.MailDomain) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.domains[client.ObjectKeyFromObject(md)]; ok && l.uid == md.UID {
		return l.addrs
	}
	return nil
}

func (p *purgeLists) set(md *v1alpha1.MailDomain, addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.domains == nil {
		p.domains = map[types.NamespacedName]purgeList{}
	}
	p.domains[client.ObjectKeyFromObject(md)] = purgeList{uid: md.UID, addrs: addrs}
}

func (p *purgeLists) forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.domains, key)
}

// primaryAddress is mb's address as the server names its Maildir ("" if it is no address).
func primaryAddress(mb *v1alpha1.Mailbox) string {
	local, domain, err := config.CheckAddress(mb.Spec.Address)
	if err != nil {
		return ""
	}
	return local + "@" + domain
}

// splitDeleted separates the Mailboxes being deleted from the others, and returns those of them
// whose mail the server is to remove: reclaimPolicy Delete and still holding our finalizer.
func splitDeleted(all []v1alpha1.Mailbox) (live, reclaimed []v1alpha1.Mailbox) {
	for _, mb := range all {
		switch {
		case mb.DeletionTimestamp.IsZero():
			live = append(live, mb)
		case mb.Spec.ReclaimPolicy == v1alpha1.MailboxDelete && controllerutil.ContainsFinalizer(&mb, MailboxFinalizer):
			reclaimed = append(reclaimed, mb)
		}
	}
	return live, reclaimed
}

// purgeAddresses is md's new purge list: what its ConfigMap and the last write listed, plus the
// reclaimed Mailboxes' addresses, less the addresses of live Mailboxes.
func (r *MailDomainReconciler) purgeAddresses(ctx context.Context, md *v1alpha1.MailDomain, live, reclaimed []v1alpha1.Mailbox) ([]string, error) {
	var cm corev1.ConfigMap
	err := r.Get(ctx, client.ObjectKey{Namespace: md.Namespace, Name: kmbuilder.ConfigMapName(md)}, &cm)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading ConfigMap %s: %w", kmbuilder.ConfigMapName(md), err)
	}
	var addrs []string
	if ref := metav1.GetControllerOf(&cm); err == nil && ref != nil && ref.UID == md.UID {
		addrs = append(addrs, kmbuilder.PurgeList(&cm)...)
	}
	addrs = append(addrs, r.purges.get(md)...)
	for i := range reclaimed {
		if a := primaryAddress(&reclaimed[i]); a != "" {
			addrs = append(addrs, a)
		}
	}
	current := map[string]bool{}
	for i := range live {
		current[primaryAddress(&live[i])] = true
	}
	seen := map[string]bool{}
	var out []string
	for _, a := range addrs {
		if !current[a] && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// reclaimPhase removes the finalizer of the deleted Mailboxes whose addresses the ConfigMap now
// lists for purging, so they go; an Event on the MailDomain says whose mail the server removes.
func (r *MailDomainReconciler) reclaimPhase(ctx context.Context, st *domainState) error {
	for i := range st.config.reclaimed {
		mb := &st.config.reclaimed[i]
		if err := removeFinalizer(ctx, r.Client, mb); err != nil {
			return err
		}
		r.Recorder.Eventf(st.md, mb, corev1.EventTypeNormal, "MailboxMailDeleted", "Reclaim",
			"Mailbox %s was deleted with reclaimPolicy Delete: the mail server removes the mail of %s", mb.Name, mb.Spec.Address)
		log.FromContext(ctx).Info("Listed a deleted Mailbox's mail for removal", "mailbox", mb.Name, "address", mb.Spec.Address)
	}
	return nil
}

// removeFinalizer takes MailboxFinalizer off mb (a Mailbox already gone is fine).
func removeFinalizer(ctx context.Context, c client.Client, mb *v1alpha1.Mailbox) error {
	if !controllerutil.ContainsFinalizer(mb, MailboxFinalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(mb.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(mb, MailboxFinalizer)
	if err := c.Patch(ctx, mb, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of Mailbox %s: %w", mb.Name, err)
	}
	return nil
}

// reconcileFinalizer keeps MailboxFinalizer on mb exactly while its mail is to be deleted with
// it. For a Mailbox being deleted it reports done=true: there is no status to write.
func (r *MailboxReconciler) reconcileFinalizer(ctx context.Context, mb *v1alpha1.Mailbox) (done bool, err error) {
	wantDelete := mb.Spec.ReclaimPolicy == v1alpha1.MailboxDelete
	if !mb.DeletionTimestamp.IsZero() {
		if !wantDelete {
			return true, removeFinalizer(ctx, r.Client, mb)
		}
		served, err := r.served(ctx, mb)
		if err != nil || served {
			return true, err // the MailDomainReconciler records the address, then removes it
		}
		return true, removeFinalizer(ctx, r.Client, mb)
	}
	if wantDelete == controllerutil.ContainsFinalizer(mb, MailboxFinalizer) {
		return false, nil
	}
	if !wantDelete {
		return false, removeFinalizer(ctx, r.Client, mb)
	}
	patch := client.MergeFromWithOptions(mb.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(mb, MailboxFinalizer)
	if err := r.Patch(ctx, mb, patch); err != nil {
		return false, fmt.Errorf("adding the finalizer: %w", err)
	}
	return false, nil
}

// served reports whether a MailDomain not being deleted serves mb's domain in its namespace.
func (r *MailboxReconciler) served(ctx context.Context, mb *v1alpha1.Mailbox) (bool, error) {
	domains, err := servingDomains(ctx, r.Client, mb.Namespace, mailboxDomain(mb))
	if err != nil {
		return false, err
	}
	for _, md := range domains {
		if md.DeletionTimestamp.IsZero() {
			return true, nil
		}
	}
	return false, nil
}
