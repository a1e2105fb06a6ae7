package server

import (
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/queue"
)

// routing is the outbound part of cfg for the delivery client: each RelayPolicy with a
// smarthost, in the order of their names, sends the mail of its domains (all, if it names none).
func routing(cfg *config.Config) delivery.Routing {
	var r delivery.Routing
	for _, p := range cfg.RelayPolicies {
		if p.Smarthost == nil {
			continue
		}
		r.Smarthosts = append(r.Smarthosts, delivery.SmarthostRule{
			SenderDomains: p.Domains,
			Smarthost: delivery.Smarthost{
				Host: p.Smarthost.Host, Port: p.Smarthost.Port, TLS: delivery.TLSMode(p.Smarthost.TLS),
				Username: p.Smarthost.Username, Password: p.Smarthost.Password,
			},
		})
	}
	return r
}

// retryPolicy is the queue's schedule: the first RelayPolicy (by name) that sets a retry
// schedule gives it for all outbound mail; fields it leaves out keep the queue's defaults.
func retryPolicy(cfg *config.Config) queue.RetryPolicy {
	for _, p := range cfg.RelayPolicies {
		if p.Retry != (config.Retry{}) {
			return queue.RetryPolicy{
				InitialInterval:   p.Retry.InitialInterval,
				MaxInterval:       p.Retry.MaxInterval,
				Lifetime:          p.Retry.Lifetime,
				DelayWarningAfter: p.Retry.DelayWarningAfter,
			}
		}
	}
	return queue.RetryPolicy{}
}
