package server

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/kubemail/kubemail/mailserver/config"
)

// watchManifests reloads the config when a manifest file changes, so a new Mailbox can log in
// without a restart. A bad change is logged and the config in force stays. last is the
// fingerprint of the manifests the config in force was loaded from (taken before loading them),
// so a change made while the server was starting is not missed.
func watchManifests(ctx context.Context, opts Options, last [32]byte, apply func(*config.Config), hash config.PasswordHasher, log *slog.Logger) {
	interval := opts.ReloadInterval
	if interval == 0 {
		interval = 2 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := fingerprint(opts.Manifests)
		if fp == last {
			continue
		}
		last = fp
		cfg, err := config.LoadManifests(opts.Manifests, hash)
		if err != nil {
			log.Error("Kept the previous config: the changed manifests do not load", "err", err)
			continue
		}
		apply(cfg)
		log.Info("Reloaded config", "domains", len(cfg.Domains), "mailboxes", len(cfg.Mailboxes))
	}
}

// fingerprint hashes the names and contents of the manifest files. Contents, not modification
// times: a Kubernetes ConfigMap volume swaps a symlink, which leaves the files' times alone.
func fingerprint(dir string) [32]byte {
	h := sha256.New()
	entries, _ := os.ReadDir(dir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write(data)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
