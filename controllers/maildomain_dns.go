package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kubemail/kubemail/api/v1alpha1"
	kmbuilder "github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/controllers/dnscheck"
)

// Reasons of the DNSPublished condition (see package dnscheck).
const (
	ReasonPublished       = dnscheck.ReasonPublished
	ReasonRecordsMissing  = dnscheck.ReasonRecordsMissing
	ReasonRecordsMismatch = dnscheck.ReasonRecordsMismatch
	ReasonLookupFailed    = dnscheck.ReasonLookupFailed
)

// DNSCheckOptions configure the check of each MailDomain's status.dnsRecords in DNS.
type DNSCheckOptions struct {
	// Interval between two checks of a MailDomain (plus up to a tenth more, so that domains
	// spread out); zero turns the check off and removes the DNSPublished condition.
	Interval time.Duration
	// Resolver answers the lookups; nil means the name servers of /etc/resolv.conf.
	Resolver dnscheck.Resolver
	// LookupTimeout bounds each lookup; zero means dnscheck.DefaultLookupTimeout.
	LookupTimeout time.Duration
}

// dnsChecks runs the DNS check of each MailDomain in the background and keeps the latest
// result for its reconciles: a reconcile never waits on DNS. A check starts when a reconcile
// finds none for the domain's current records, or the last one older than the interval; when
// it ends, the domain is reconciled again (through events) and the result becomes the
// DNSPublished condition. A nil *dnsChecks is a check that is off.
type dnsChecks struct {
	opts    DNSCheckOptions
	checker *dnscheck.Checker
	done    chan event.TypedGenericEvent[*v1alpha1.MailDomain]
	// slots bounds the checks under way: after a start every domain's check is due at once.
	slots chan struct{}

	mu      sync.Mutex
	domains map[types.NamespacedName]*dnsState
}

// maxConcurrentDNSChecks is how many domains are checked at once (each check makes its
// lookups side by side, about ten).
const maxConcurrentDNSChecks = 4

// dnsState is one MailDomain's checks.
type dnsState struct {
	running bool
	due     time.Time // when the next check starts
	// The last check's result, and a fingerprint of what it checked (records and addresses).
	key             string
	status          metav1.ConditionStatus
	reason, message string
}

func newDNSChecks(opts DNSCheckOptions) *dnsChecks {
	if opts.Interval <= 0 {
		return nil
	}
	if opts.LookupTimeout <= 0 {
		opts.LookupTimeout = dnscheck.DefaultLookupTimeout
	}
	return &dnsChecks{
		opts:    opts,
		checker: &dnscheck.Checker{Resolver: opts.Resolver, LookupTimeout: opts.LookupTimeout},
		done:    make(chan event.TypedGenericEvent[*v1alpha1.MailDomain], 1024),
		slots:   make(chan struct{}, maxConcurrentDNSChecks),
		domains: map[types.NamespacedName]*dnsState{},
	}
}

// source is the watch that reconciles a MailDomain whose check ended.
func (d *dnsChecks) source() source.Source {
	return source.Channel(d.done, &handler.TypedEnqueueRequestForObject[*v1alpha1.MailDomain]{})
}

// bound is how long one whole check may take: SPF's evaluation makes several lookups one after
// another (RFC 7208 4.6.4 allows ten).
func (d *dnsChecks) bound() time.Duration { return 6 * d.opts.LookupTimeout }

// observe puts the latest check of md's records into status's DNSPublished condition (and the
// gauge DNSPublishedMetric), starts a check when one is due, and returns when md should be
// reconciled again for the next one. Until the first check of the current records ends, the
// condition stays as it was.
func (d *dnsChecks) observe(ctx context.Context, md *v1alpha1.MailDomain, status *v1alpha1.MailDomainStatus) time.Duration {
	name := types.NamespacedName{Namespace: md.Namespace, Name: md.Name}
	defer func() { publishDNSMetric(name, status.Conditions) }()
	if d == nil {
		meta.RemoveStatusCondition(&status.Conditions, v1alpha1.ConditionDNSPublished)
		return 0
	}
	domain := dnscheck.Domain{Name: kmbuilder.DomainName(md), Records: status.DNSRecords, MailHost: kmbuilder.MailHost(md)}
	if status.Service != nil {
		for _, a := range status.Service.ExternalAddresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				domain.Addresses = append(domain.Addresses, ip)
			}
		}
	}
	key := fingerprint(domain)
	now := time.Now()

	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.domains[name]
	if s == nil {
		s = &dnsState{}
		d.domains[name] = s
	}
	if s.key == key && s.status != "" {
		before := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionDNSPublished)
		set(&status.Conditions, md, v1alpha1.ConditionDNSPublished, s.status, s.reason, s.message)
		if before == nil || before.Status != s.status || before.Reason != s.reason || before.Message != s.message {
			log.FromContext(ctx).Info("Checked the DNS records", "domain", domain.Name,
				"published", s.status, "reason", s.reason, "message", s.message)
		}
	}
	if !s.running && (s.key != key || !now.Before(s.due)) {
		s.running = true
		go d.run(name, s, key, domain)
	}
	if s.running {
		// The check's end brings a reconcile; this one is in case that event is lost.
		return d.bound() + time.Second
	}
	return s.due.Sub(now)
}

// run checks domain's records into s and starts name's next reconcile, which reads them.
func (d *dnsChecks) run(name types.NamespacedName, s *dnsState, key string, domain dnscheck.Domain) {
	d.slots <- struct{}{}
	defer func() { <-d.slots }()
	ctx, cancel := context.WithTimeout(context.Background(), d.bound())
	defer cancel()
	status, reason, message := d.checker.Check(ctx, domain).Condition()

	d.mu.Lock()
	s.running = false
	s.key, s.status, s.reason, s.message = key, status, reason, message
	s.due = time.Now().Add(d.opts.Interval + rand.N(d.opts.Interval/10+1))
	current := d.domains[name] == s
	d.mu.Unlock()
	if !current {
		return // the MailDomain is gone
	}
	// The buffer fills only when the manager has stopped reading: then nobody needs this.
	select {
	case d.done <- event.TypedGenericEvent[*v1alpha1.MailDomain]{Object: &v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Namespace: name.Namespace, Name: name.Name}}}:
	default:
	}
}

// forget drops a deleted MailDomain's results and its series of DNSPublishedMetric.
func (d *dnsChecks) forget(name types.NamespacedName) {
	forgetDNSMetric(name)
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.domains, name)
}

// fingerprint identifies what a check looks at, so that new records are checked at once.
func fingerprint(d dnscheck.Domain) string {
	b, _ := json.Marshal(d)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
