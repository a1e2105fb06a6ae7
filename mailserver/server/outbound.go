package server

import (
	"net"
	"strconv"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/queue"
)

// routing is the outbound part of cfg for the delivery client, from the RelayPolicies in the
// order of their names:
//   - the routes of every policy fill the static map (recipient domain -> host:port), whatever
//     sender domains the policy names; when two policies route the same domain, the first by
//     name wins (the operator's own policy of in-cluster routes leaves out any domain a user's
//     policy routes, so the user's route is the one taken);
//   - each policy with a smarthost sends the mail of its domains (all, if it names none).
func routing(cfg *config.Config) delivery.Routing {
	var r delivery.Routing
	for _, p := range cfg.RelayPolicies {
		for _, rt := range p.Routes {
			for _, d := range rt.Domains {
				if _, taken := r.Static[d]; taken {
					continue
				}
				if r.Static == nil {
					r.Static = map[string]string{}
				}
				r.Static[d] = net.JoinHostPort(rt.Host, strconv.Itoa(rt.Port))
			}
		}
	}
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
