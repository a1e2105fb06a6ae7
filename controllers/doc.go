// Package controllers reconciles the kubemail API into running mail servers.
//
// MailDomainReconciler turns each MailDomain into the children that controllers/builder renders
// (Secret, ConfigMap, headless and client Service, StatefulSet), in that order, because the pod
// needs its manifests before it starts. The domain's runtime config comes from the same
// mailserver/config.Resolve that the standalone server runs, over the domain, the Mailboxes
// whose address is in the domain, the RelayPolicies that select it and the referenced Secrets.
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
// MailDomain serves it. RelayPolicyReconciler likewise reports which MailDomains' config a
// RelayPolicy is in and what it lacks (a domain it names, its smarthost credentials).
//
// Children are written with server-side apply as field manager "kubemail-operator", and only
// when the object in the cache differs from the rendered one in a field we set: a steady state
// makes no writes. Status conditions (Ready, Progressing, Degraded, each with
// observedGeneration) are patched only when they change.
package controllers
