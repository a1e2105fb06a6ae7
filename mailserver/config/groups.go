package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// MaxGroupExpansion bounds the addresses one MailGroup reaches once nested groups are expanded.
const MaxGroupExpansion = 1000

// BouncesTag is the plus-address tag of a group's bounce address: the group's remote copies
// leave with the envelope sender "local+bounces@domain" (see BounceAddress), so a bounce never
// goes back to the original sender (RFC 5321 3.9.2), and Directory.Lookup delivers mail to it
// into the domain's postmaster mailbox.
const BouncesTag = "bounces"

// Group is a resolved MailGroup: a distribution list.
type Group struct {
	// Address is the group's address in lower case.
	Address string `json:"address"`
	// Members are spec.members as declared: local ones lower-cased, remote ones with their
	// domain lower-cased and their local part as written.
	Members []string `json:"members"`
	// AcceptFrom is "Anyone", "Members" or "Domain".
	AcceptFrom string `json:"acceptFrom"`
	// Expanded is every address the group's mail goes to, in order, each once: members in our
	// domains as the primary address of their mailbox, nested groups replaced by their
	// members, remote members as in Members.
	Expanded []string `json:"expanded"`
}

// BounceAddress is the envelope sender of the group's copies: "local+bounces@domain".
func (g *Group) BounceAddress() string {
	local, domain, _ := SplitAddress(g.Address)
	return local + "+" + BouncesTag + "@" + domain
}

// groupCandidate is a MailGroup whose address and acceptFrom are good, before its members are
// checked and expanded.
type groupCandidate struct {
	obj     *v1alpha1.MailGroup
	group   Group
	members []string // as resolved: "" for a member that failed
	failed  bool
}

// groups resolves the MailGroups after the Mailboxes: address (served domain, no collision
// with a Mailbox's address or alias or another group's), acceptFrom, members (syntax; one in
// our domains must reach a mailbox or a group), then the expansion (no loops, at most
// MaxGroupExpansion addresses).
func (r *resolver) groups(objs []v1alpha1.MailGroup) {
	sorted := append([]v1alpha1.MailGroup(nil), objs...)
	sort.Slice(sorted, func(i, j int) bool {
		return qualified(sorted[i].Namespace, sorted[i].Name) < qualified(sorted[j].Namespace, sorted[j].Name)
	})
	local := map[string]string{} // mailbox address or alias -> primary address
	for _, mb := range r.cfg.Mailboxes {
		local[mb.Address] = mb.Address
		for _, a := range mb.Aliases {
			local[a] = mb.Address
		}
	}
	byAddr := map[string]*groupCandidate{}
	var cands []*groupCandidate
	for i := range sorted {
		g := &sorted[i]
		fail := func(field, format string, args ...any) {
			r.fail("MailGroup", g.Namespace, g.Name, field, format, args...)
		}
		addr, err := r.localAddress(g.Spec.Address)
		if err != nil {
			fail("spec.address", "%v", err)
			continue
		}
		if owner, taken := r.seen[addr]; taken {
			fail("spec.address", "address %q is already taken by %s", addr, owner)
			continue
		}
		accept := string(g.Spec.AcceptFrom)
		switch g.Spec.AcceptFrom {
		case "":
			accept = string(v1alpha1.AcceptFromAnyone)
		case v1alpha1.AcceptFromAnyone, v1alpha1.AcceptFromMembers, v1alpha1.AcceptFromDomain:
		default:
			fail("spec.acceptFrom", "%q is not one of Anyone, Members, Domain", accept)
			continue
		}
		if n := len(g.Spec.Members); n == 0 || n > MaxGroupExpansion {
			fail("spec.members", "has %d members; a group has 1 to %d", n, MaxGroupExpansion)
			continue
		}
		r.seen[addr] = "MailGroup " + qualified(g.Namespace, g.Name)
		c := &groupCandidate{obj: g, group: Group{Address: addr, AcceptFrom: accept}}
		byAddr[addr] = c
		cands = append(cands, c)
	}
	for _, c := range cands {
		for i, m := range c.obj.Spec.Members {
			member, err := r.member(m, local, byAddr)
			if err != nil {
				r.fail("MailGroup", c.obj.Namespace, c.obj.Name, fmt.Sprintf("spec.members[%d]", i), "%v", err)
				c.failed = true
				break
			}
			c.members = append(c.members, member)
			if !contains(c.group.Members, member) {
				c.group.Members = append(c.group.Members, member)
			}
		}
	}
	for _, c := range cands {
		if c.failed {
			continue
		}
		expanded, field, err := expandGroup(c, byAddr, local)
		if err != nil {
			r.fail("MailGroup", c.obj.Namespace, c.obj.Name, field, "%v", err)
			continue
		}
		c.group.Expanded = expanded
		r.cfg.Groups = append(r.cfg.Groups, c.group)
	}
	sort.Slice(r.cfg.Groups, func(i, j int) bool { return r.cfg.Groups[i].Address < r.cfg.Groups[j].Address })
}

// member checks one spec.members entry and returns it normalised: in our domains it must be a
// mailbox's address or alias (a plus-address of one too) or a group's address; elsewhere any
// dot-atom address.
func (r *resolver) member(m string, local map[string]string, groups map[string]*groupCandidate) (string, error) {
	at := strings.LastIndexByte(m, '@')
	if at <= 0 || at == len(m)-1 {
		return "", fmt.Errorf("%q is not an address of the form local@domain", m)
	}
	lp, domain := m[:at], strings.ToLower(m[at+1:])
	if err := CheckDomain(domain); err != nil {
		return "", fmt.Errorf("domain of %q: %w", m, err)
	}
	if len(lp) > 64 {
		return "", fmt.Errorf("local part of %q is longer than 64 characters", m)
	}
	for _, atom := range strings.Split(strings.ToLower(lp), ".") {
		if atom == "" {
			return "", fmt.Errorf("local part of %q has an empty dot-separated part", m)
		}
		for _, c := range atom {
			if !isAddressChar(c) && c != '+' {
				return "", fmt.Errorf("local part of %q has the character %q", m, c)
			}
		}
	}
	if !r.hasDomain(domain) {
		return lp + "@" + domain, nil
	}
	addr := strings.ToLower(lp) + "@" + domain
	if _, ok := groups[addr]; ok {
		return addr, nil
	}
	base := stripPlus(addr)
	if _, ok := local[base]; ok {
		return addr, nil
	}
	if _, ok := groups[base]; ok {
		return base, nil
	}
	return "", fmt.Errorf("%q is in domain %q served here but is no Mailbox's address or alias, nor a MailGroup's", m, domain)
}

// expandGroup flattens c's members: nested groups by their own expansion (a loop is an error
// naming the path and the member where it starts), local addresses by their mailbox's primary
// address, each address once.
func expandGroup(c *groupCandidate, groups map[string]*groupCandidate, local map[string]string) ([]string, string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(m string) error {
		target := m
		if primary, ok := local[stripPlus(m)]; ok {
			target = primary
		}
		if key := strings.ToLower(target); !seen[key] {
			seen[key] = true
			out = append(out, target)
			if len(out) > MaxGroupExpansion {
				return fmt.Errorf("expands to more than %d addresses", MaxGroupExpansion)
			}
		}
		return nil
	}
	var walk func(g *groupCandidate, path []string) error
	walk = func(g *groupCandidate, path []string) error {
		for _, m := range g.members {
			inner, ok := groups[m]
			if !ok {
				if err := add(m); err != nil {
					return err
				}
				continue
			}
			for _, p := range path {
				if p == m {
					return fmt.Errorf("group loop: %s → %s", strings.Join(path, " → "), m)
				}
			}
			if inner.failed {
				return fmt.Errorf("member group %q has errors of its own", m)
			}
			if err := walk(inner, append(path, m)); err != nil {
				return err
			}
		}
		return nil
	}
	path := []string{c.group.Address}
	for i, m := range c.members {
		var err error
		if inner, ok := groups[m]; ok {
			switch {
			case m == c.group.Address:
				err = fmt.Errorf("group loop: %s is a member of itself", m)
			case inner.failed:
				err = fmt.Errorf("member group %q has errors of its own", m)
			default:
				err = walk(inner, append(path, m))
			}
		} else {
			err = add(m)
		}
		if err != nil {
			return nil, fmt.Sprintf("spec.members[%d]", i), err
		}
	}
	return out, "", nil
}

// stripPlus removes a plus-address tag: "alice+x@d" is "alice@d".
func stripPlus(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	if plus := strings.IndexByte(addr[:at], '+'); plus > 0 {
		return addr[:plus] + addr[at:]
	}
	return addr
}
