package config

import (
	"net/netip"
	"strings"
)

// Directory answers the mail server's questions about a Config: is this domain ours, which
// mailbox does this address reach. It is built once per config and never changes, so sessions
// may share it; a reload builds a new one.
type Directory struct {
	cfg       *Config
	domains   map[string]*Domain
	addresses map[string]*Mailbox // primary addresses and aliases
	groups    map[string]*Group   // group addresses
	trusted   []netip.Prefix      // every RelayPolicy's trustedNetworks
}

// NewDirectory indexes cfg. cfg must have come from Resolve and must not change afterwards.
func NewDirectory(cfg *Config) *Directory {
	d := &Directory{
		cfg:       cfg,
		domains:   make(map[string]*Domain, len(cfg.Domains)),
		addresses: make(map[string]*Mailbox, len(cfg.Mailboxes)),
		groups:    make(map[string]*Group, len(cfg.Groups)),
	}
	for i := range cfg.Groups {
		d.groups[cfg.Groups[i].Address] = &cfg.Groups[i]
	}
	for i := range cfg.Domains {
		d.domains[cfg.Domains[i].Name] = &cfg.Domains[i]
	}
	for _, p := range cfg.RelayPolicies {
		for _, n := range p.TrustedNetworks {
			if prefix, err := netip.ParsePrefix(n); err == nil {
				d.trusted = append(d.trusted, prefix)
			}
		}
	}
	for i := range cfg.Mailboxes {
		mb := &cfg.Mailboxes[i]
		d.addresses[mb.Address] = mb
		for _, a := range mb.Aliases {
			d.addresses[a] = mb
		}
	}
	return d
}

// Config returns the config the directory was built from.
func (d *Directory) Config() *Config { return d.cfg }

// Domain returns the served domain of that name (any case), or nil.
func (d *Directory) Domain(name string) *Domain {
	return d.domains[strings.ToLower(strings.TrimSuffix(name, "."))]
}

// MaxMessageSize is the largest size limit of any domain: what SMTP SIZE advertises before it
// knows the recipients.
func (d *Directory) MaxMessageSize() int64 {
	var limit int64
	for _, dom := range d.cfg.Domains {
		limit = max(limit, dom.MaxMessageSize)
	}
	if limit == 0 {
		return DefaultMaxMessageSize
	}
	return limit
}

// Mailbox returns the mailbox whose primary address is addr (any case), or nil. Logins use it:
// aliases and plus-addresses are not login names.
func (d *Directory) Mailbox(addr string) *Mailbox {
	mb := d.addresses[strings.ToLower(addr)]
	if mb == nil || !strings.EqualFold(mb.Address, addr) {
		return nil
	}
	return mb
}

// Why a reload takes a login's access away (Directory.Revocation); the values label
// kubemail_sessions_revoked_total.
const (
	RevokedRemoved     = "removed"     // the mailbox is no longer in the config
	RevokedCredentials = "credentials" // its password hash changed
)

// Revocation says why d takes away the access of a login to address that was checked against
// passwordHash: "" when it does not, else RevokedRemoved or RevokedCredentials. Aliases and quota
// may change without it.
func (d *Directory) Revocation(address, passwordHash string) string {
	mb := d.Mailbox(address)
	switch {
	case mb == nil:
		return RevokedRemoved
	case mb.PasswordHash != passwordHash:
		return RevokedCredentials
	}
	return ""
}

// Lookup returns the mailbox that mail to addr is delivered into: by primary address, alias, or
// a plus-address ("alice+tag@example.test" reaches alice@example.test) when no mailbox or alias
// has the exact address. A group's bounce address ("team+bounces@example.test", see
// Group.BounceAddress) reaches the domain's postmaster mailbox. It returns nil when no mailbox
// takes the address.
func (d *Directory) Lookup(addr string) *Mailbox {
	local, domain, ok := SplitAddress(addr)
	if !ok {
		return nil
	}
	if mb := d.addresses[local+"@"+domain]; mb != nil {
		return mb
	}
	if plus := strings.IndexByte(local, '+'); plus > 0 {
		base := local[:plus] + "@" + domain
		if d.groups[base] != nil && local[plus+1:] == BouncesTag {
			return d.addresses["postmaster@"+domain]
		}
		return d.addresses[base]
	}
	return nil
}

// Group returns the group that mail to addr goes to: by its address or a plus-address of it
// ("team+tag@example.test"), except the group's bounce address, which Lookup answers. It returns
// nil when addr is no group's.
func (d *Directory) Group(addr string) *Group {
	local, domain, ok := SplitAddress(addr)
	if !ok {
		return nil
	}
	if g := d.groups[local+"@"+domain]; g != nil {
		return g
	}
	if plus := strings.IndexByte(local, '+'); plus > 0 && local[plus+1:] != BouncesTag {
		return d.groups[local[:plus]+"@"+domain]
	}
	return nil
}

// Trusted reports whether a client at ip may relay without authenticating: it is in the
// trustedNetworks of some RelayPolicy.
func (d *Directory) Trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range d.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
