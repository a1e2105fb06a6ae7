// Package controllers reconciles the kubemail API into running mail servers.
//
// MailDomainReconciler turns each MailDomain into the children that controllers/builder renders
// (Secret, ConfigMap, headless and client Service, StatefulSet), in that order, because the pod
// needs its manifests before it starts. Its runtime config comes from the same
// mailserver/config.Resolve that the standalone server runs, over the domain, the Mailboxes
// whose address is in the domain, the RelayPolicies that select it and the referenced Secrets.
// The config also routes mail for every other MailDomain the operator watches (in any namespace)
// to that domain's client Service, <name>.<namespace>.svc port 25, through a RelayPolicy
// "kubemail-cluster-routes" the operator adds (builder.ClusterRoutesPolicy; the CRD reserves the
// name), so mail between the cluster's domains stays inside it. A MailDomain created, deleted
// or starting to be deleted requeues all the others; nothing else about it does.
// MailboxReconciler only reports: a Mailbox is Ready when its password is in its domain's
// Secret, and otherwise says why not (no such domain, no such Secret or key, a conflict).
// RelayPolicyReconciler likewise reports which MailDomains' config a RelayPolicy is in and what
// it lacks (a domain it names, its smarthost credentials).
//
// Children are written with server-side apply as field manager "kubemail-operator", and only
// when the object in the cache differs from the rendered one in a field we set: a steady state
// makes no writes. Status conditions (Ready, Progressing, Degraded, each with
// observedGeneration) are patched only when they change.
package controllers
