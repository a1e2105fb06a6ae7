package v1alpha1

// Condition types of every kubemail kind, in status.conditions.
const (
	// ConditionReady is True when the object is fully in effect: a MailDomain's server is
	// running with the current config, a Mailbox can log in and receive mail.
	ConditionReady = "Ready"
	// ConditionProgressing is True while the operator is still bringing the object into effect.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when the object is in effect only in part, or not at all
	// because of a problem the user has to fix; the reason and message say which.
	ConditionDegraded = "Degraded"
	// ConditionDNSPublished (MailDomain only) is True when the records of status.dnsRecords are
	// published in DNS as receiving mail servers look them up, and the reverse DNS (PTR) of the
	// server's public addresses names the mail host and resolves back, False when some are missing or
	// wrong (the message names each and what was found), Unknown when the lookups failed. It
	// never affects Ready: the server runs whatever DNS says. Absent when the operator's DNS
	// check is off (--dns-check-interval=0).
	ConditionDNSPublished = "DNSPublished"
)
