package mtasts

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubemail/kubemail/internal/durable"
)

// record is a kept policy on disk: Dir/<domain>.json.
type record struct {
	Domain  string    `json:"domain"`
	ID      string    `json:"id"`
	Fetched time.Time `json:"fetched"`
	Policy  string    `json:"policy"` // the policy file as served
}

func (p *Policies) path(domain string) string { return filepath.Join(p.opts.Dir, domain+".json") }

// save writes domain's policy to disk, durably (write, fsync, rename, fsync the directory), so
// a restart right after still applies it. A failure is logged: the policy stays in memory.
func (p *Policies) save(domain string, pol *Policy, body []byte) {
	if p.opts.Dir == "" {
		return
	}
	data, err := json.Marshal(record{Domain: domain, ID: pol.ID, Fetched: pol.Fetched.UTC(), Policy: string(body)})
	if err == nil {
		err = os.MkdirAll(p.opts.Dir, 0o700)
	}
	if err == nil {
		err = durable.Replace(p.path(domain), p.path(domain)+".tmp", append(data, '\n'), 0o600)
	}
	if err != nil {
		p.log.Error("Keeping the MTA-STS policy on disk failed", "domain", domain, "err", err)
	}
}

func (p *Policies) remove(domain string) {
	if p.opts.Dir == "" {
		return
	}
	if err := os.Remove(p.path(domain)); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.log.Error("Removing an expired MTA-STS policy failed", "domain", domain, "err", err)
	}
}

// load reads the kept policies. An unreadable or expired one is removed: the next discovery
// fetches it again.
func (p *Policies) load() {
	if p.opts.Dir == "" {
		return
	}
	entries, err := os.ReadDir(p.opts.Dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.log.Error("Reading the kept MTA-STS policies failed", "dir", p.opts.Dir, "err", err)
		}
		return
	}
	now := p.opts.Now()
	for _, e := range entries {
		name := e.Name()
		file := filepath.Join(p.opts.Dir, name)
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(file) // a write a crash interrupted
			continue
		}
		domain, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		pol, err := readRecord(file, domain)
		switch {
		case err != nil:
			p.log.Warn("Dropped an unreadable kept MTA-STS policy", "file", file, "err", err)
			os.Remove(file)
		case !now.Before(pol.Expires()):
			os.Remove(file)
		default:
			p.cache[domain] = pol
		}
	}
	if len(p.cache) > 0 {
		p.log.Info("Loaded the kept MTA-STS policies", "count", len(p.cache))
	}
}

func readRecord(file, domain string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	if r.Domain != domain || !isHostname(domain) || !isID(r.ID) {
		return nil, fmt.Errorf("record for %q, id %q, in %s", r.Domain, r.ID, file)
	}
	pol, err := Parse([]byte(r.Policy))
	if err != nil {
		return nil, err
	}
	pol.ID, pol.Fetched = r.ID, r.Fetched
	return pol, nil
}
