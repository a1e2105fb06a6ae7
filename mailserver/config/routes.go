package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// routes resolves a RelayPolicy's spec.routes. A route for a domain we serve is an error: our
// own mail is delivered into our mailboxes, so such a route would never be taken and almost
// certainly means the policy was meant for another server. So is a domain listed twice in one
// policy; across policies the first by name wins (see mailserver/server routing).
func (r *resolver) routes(in []v1alpha1.Route, fail func(field, format string, args ...any)) ([]Route, bool) {
	var out []Route
	routed := map[string]string{} // domain -> field of the route that lists it
	for i, rt := range in {
		field := fmt.Sprintf("spec.routes[%d]", i)
		if len(rt.Domains) == 0 {
			fail(field+".domains", "must list at least one domain")
			return nil, false
		}
		route := Route{Port: int(rt.Port)}
		for j, d := range rt.Domains {
			dfield := fmt.Sprintf("%s.domains[%d]", field, j)
			d = strings.ToLower(strings.TrimSuffix(d, "."))
			if err := CheckDomain(d); err != nil {
				fail(dfield, "%v", err)
				return nil, false
			}
			if r.hasDomain(d) {
				fail(dfield, "domain %q is served here; mail for it is delivered locally and cannot be routed", d)
				return nil, false
			}
			if other, dup := routed[d]; dup {
				fail(dfield, "domain %q is already routed by %s", d, other)
				return nil, false
			}
			routed[d] = field
			route.Domains = append(route.Domains, d)
		}
		host, err := checkHost(rt.Host)
		if err != nil {
			fail(field+".host", "%v", err)
			return nil, false
		}
		route.Host = host
		if route.Port == 0 {
			route.Port = DefaultRoutePort
		}
		if route.Port < 1 || route.Port > 65535 {
			fail(field+".port", "%d is not a port number", route.Port)
			return nil, false
		}
		out = append(out, route)
	}
	return out, true
}

// checkHost checks the host of a route: an IP address, or a host name of letters, digits,
// hyphens and underscores (a single label, such as a Kubernetes Service's short name, is
// allowed), returned in lower case without a trailing dot.
func checkHost(host string) (string, error) {
	if host == "" {
		return "", errEmpty
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("%q has a zone, which a route cannot use", host)
		}
		return ip.String(), nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if len(name) > 253 {
		return "", errors.New("is longer than 253 characters")
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%q is neither an IP address nor a host name (label %q)", host, l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q is neither an IP address nor a host name (character %q)", host, c)
			}
		}
	}
	return name, nil
}
