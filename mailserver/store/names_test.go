package store

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Mail delivered within one tick of the file system's clock has equal mtimes, so its base names
// decide the order of its UIDs: they must be the order of delivery, also where the microseconds
// gain a digit (M99999 -> M100000, 0.1 s into a second) or the counter does (Q9 -> Q10). Sorted
// as strings, both pairs came out reversed; CI saw the first swap two messages' UIDs.
func TestUIDsFollowDeliveryOrderWithinOneClockTick(t *testing.T) {
	s, data := openTestStore(t)
	a, err := s.Account("alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	delivered := []string{ // in delivery order
		"1764170000.M99998P7Q8.host,S=14",
		"1764170000.M99999P7Q9.host,S=14",
		"1764170000.M100000P7Q10.host,S=14",
		"1764170000.M100000P7Q11.host,S=14",
		"1764170001.M5P7Q12.host,S=14",
	}
	newDir := filepath.Join(data, "mail", "example.test", "alice", "new")
	tick := time.Date(2025, 11, 26, 15, 0, 0, 0, time.UTC)
	for _, name := range slices.Backward(delivered) {
		path := filepath.Join(newDir, name)
		if err := os.WriteFile(path, []byte("Subject: x\r\n\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, tick, tick); err != nil {
			t.Fatal(err)
		}
	}
	inbox, err := a.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range messages(t, inbox) {
		got = append(got, m.base)
	}
	if !slices.Equal(got, delivered) {
		t.Errorf("messages in UID order:\n%q\nwant the delivery order:\n%q", got, delivered)
	}
}

func TestCompareBases(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.M99999P1Q1.h", "1.M100000P1Q1.h", -1},
		{"1.M5P1Q10.h", "1.M5P1Q9.h", 1},
		{"1.M5P1Q9.h", "1.M5P1Q9.h", 0},
		{"1.M5P1Q09.h", "1.M5P1Q9.h", -1},
		{"2.M1P1Q1.h", "10.M1P1Q1.h", -1},
		{"1.M5P1Q9.a", "1.M5P1Q9.b", -1},
		{"1.M5P1Q9", "1.M5P1Q9.b", -1},
		{"1234.5678_1.host", "1234.5678_10.host", -1}, // Courier's names
	} {
		if got := compareBases(tc.a, tc.b); got != tc.want {
			t.Errorf("compareBases(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := compareBases(tc.b, tc.a); got != -tc.want {
			t.Errorf("compareBases(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
