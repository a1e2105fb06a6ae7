package store

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// settlePickups waits for the background pick-ups of new mail (Folder.poke) that deliveries
// started in s's loaded INBOXes: each renames files from new/ to cur/ and writes the index,
// which must not happen while the test's temp dir is being removed. openTestStore runs it as
// the test ends. A pick-up clears scanQueued once it holds the folder's lock, so taking the lock
// after that waits for the one under way; one not scheduled by then never is (nothing delivers
// any more).
func settlePickups(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	folders := slices.Collect(maps.Values(s.folders))
	s.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for _, f := range folders {
		for f.scanQueued.Load() {
			if time.Now().After(deadline) {
				t.Errorf("the pick-up of new mail in %s's %s did not start within 30s", f.address, f.name)
				return
			}
			time.Sleep(time.Millisecond)
		}
		f.mu.Lock()
		//lint:ignore SA2001 an empty critical section: waiting for the pick-up holding the lock
		f.mu.Unlock()
	}
}
