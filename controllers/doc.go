// Package controllers reconciles the kubemail API into running mail servers.
//
// MailDomainReconciler turns each MailDomain into the children that controllers/builder renders
// (Secret, ConfigMap, headless and client Service, StatefulSet), in that order, because the pod
// needs its manifests before it starts. The domain's runtime config comes from the same
// mailserver/config.Resolve that the standalone server runs, over the domain, the Mailboxes
// whose address is in the domain, the MailGroups whose address is in the domain (a change of
// one requeues its domain, so it reaches the pod through the config hash below within
// seconds), the RelayPolicies that select it and the referenced Secrets.
// The config also routes mail for every other MailDomain the operator watches (in any namespace)
// to that domain's client Service, <name>.<namespace>.svc port 25, through a RelayPolicy
// "kubemail-cluster-routes" the operator adds (builder.ClusterRoutesPolicy; the CRD reserves the
// name), so mail between the cluster's domains stays inside it. A MailDomain created, deleted
// or starting to be deleted requeues all the others; nothing else about it does.
//
// Right after the Secret and ConfigMap, the reconciler sets the annotation
// mail.kubemail.io/config-hash (ConfigHashAnnotation: the hash of the two files the pod's
// manifests volume holds) on the domain's pods that lack the current value: a change of a pod's
// annotations makes the kubelet sync the pod and rewrite its ConfigMap and Secret volumes at
// once, instead of at its periodic sync 1 to 1.5 minutes later, and the server reloads the files
// within its 2 s poll. So a new Mailbox logs in, and a deleted one is refused, within seconds
// and without a restart (the pod template is not touched). The manager caches only mail server
// pods (CacheOptions); a new pod starts a reconcile of its domain.
//
// A Mailbox being deleted is out of its domain's config at once, so its credentials leave the
// server with that update. One with reclaimPolicy Delete carries MailboxFinalizer: the
// MailDomainReconciler adds its address to the purge list of the domain's config, and only once
// the ConfigMap has it lets the Mailbox go; the server removes the Maildirs of listed addresses
// that are no mailboxes (see MailboxFinalizer and mailserver/server).
//
// MailboxReconciler reports: a Mailbox is Ready when its password is in its domain's Secret, and
// otherwise says why not (no such domain, no such Secret or key, a conflict). It also puts
// MailboxFinalizer on and off as spec.reclaimPolicy says, and lets a deleted Mailbox go when no
// MailDomain serves it. MailGroupReconciler reports a MailGroup Ready (reason Active, with the
// number of addresses it expands to) when a MailDomain serves its domain and Resolve takes it
// with the domain's Mailboxes and groups; otherwise DomainNotFound, or Rejected with the field
// and the problem (a loop, a member that is nobody here, an address taken); it sets
// status.members, the count of spec.members, for the printer column. RelayPolicyReconciler likewise reports which MailDomains' config a
// RelayPolicy is in and what it lacks (a domain it names, its smarthost credentials).
//
// The MailDomain's status lists the DNS records to publish (builder.DNSRecords), and the
// condition DNSPublished says whether they are (package dnscheck checks each for what it
// means: our MX host among the MX targets, one SPF record that passes the server's public
// addresses, our DKIM key whole, one DMARC policy, and the PTR of each public address naming
// the mail host, forward-confirmed; the PTR is published by the IP's owner, so it is checked
// but not listed in status.dnsRecords). The check runs in the background
// (dnsChecks), never in a reconcile: a reconcile starts one when the domain's records changed
// or the last check is older than DNSCheckOptions.Interval (plus up to a tenth, so that
// domains spread out), copies the latest result into the condition, and asks to be requeued
// when the next is due; the end of a check reconciles the domain again through a channel
// source. Each lookup has a timeout and a whole check a bound, so a dead name server costs a
// goroutine for seconds and no reconcile waits. DNSPublished never touches Ready (the server
// runs whatever DNS says); it is True/Published, False/RecordsMissing or RecordsMismatch with
// each wrong record and what was found, or Unknown/LookupFailed. Its message depends only on
// the DNS answers, so a check that finds the same writes nothing. With the interval zero
// (kubemail manager --dns-check-interval=0) there is no check and no condition.
//
// Children are written with server-side apply as field manager "kubemail-operator", and only
// when the object in the cache differs from the rendered one in a field we set: a steady state
// makes no writes. Status conditions (Ready, Progressing, Degraded, DNSPublished, each with
// observedGeneration) are patched only when they change. Events mark the transitions of Ready,
// Degraded and DNSPublished (recordTransitions).
package controllers
