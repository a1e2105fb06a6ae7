package smtp

import (
	"io"
	"strings"
	"sync/atomic"
	"testing"
)

// A message is held in memory up to a MiB, the rest in a file; past the total memory budget the
// whole message goes to the file; either way it reads back whole, any number of times.
func TestSpoolMemoryAndFile(t *testing.T) {
	var inUse atomic.Int64
	small := "Subject: s\r\n\r\nsmall\r\n"
	large := strings.Repeat("0123456789abcdef", (spoolMemory/16)+1000)
	check := func(sp *spool, want string, inFile bool) {
		t.Helper()
		for range 2 {
			got, err := io.ReadAll(sp.reader())
			if err != nil || string(got) != want {
				t.Fatalf("read back %d bytes, %v; want %d", len(got), err, len(want))
			}
		}
		if (sp.f != nil) != inFile {
			t.Fatalf("in a file: %v, want %v", sp.f != nil, inFile)
		}
	}
	a, err := readSpool(strings.NewReader(small), t.TempDir(), &inUse)
	if err != nil {
		t.Fatal(err)
	}
	check(a, small, false)
	b, err := readSpool(strings.NewReader(large), t.TempDir()+"/made", &inUse)
	if err != nil {
		t.Fatal(err)
	}
	check(b, large, true)
	inUse.Add(spoolMemoryTotal) // as if many messages were being checked
	c, err := readSpool(strings.NewReader(small), t.TempDir(), &inUse)
	if err != nil {
		t.Fatal(err)
	}
	check(c, small, true)
	inUse.Add(-spoolMemoryTotal)
	for _, sp := range []*spool{a, b, c} {
		sp.close()
	}
	if n := inUse.Load(); n != 0 {
		t.Fatalf("%d bytes still reserved after close", n)
	}
}
