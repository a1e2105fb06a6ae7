package durable

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteNewAndReplace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	n, err := WriteNew(p, 0o600, []byte("head\n"), strings.NewReader("body\n"))
	if err != nil || n != 10 {
		t.Fatalf("WriteNew = %d, %v", n, err)
	}
	if _, err := WriteNew(p, 0o600, []byte("x"), nil); err == nil {
		t.Error("WriteNew overwrote an existing file")
	}
	if got, _ := os.ReadFile(p); string(got) != "head\nbody\n" {
		t.Errorf("content %q", got)
	}
	if err := Replace(p, filepath.Join(dir, "f.tmp"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "new" {
		t.Errorf("after Replace: %q", got)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	if _, err := os.Stat(filepath.Join(dir, "f.tmp")); !os.IsNotExist(err) {
		t.Error("Replace left its scratch file")
	}
	if err := Move(filepath.Join(dir, "missing"), p); err == nil {
		t.Error("Move of a missing file succeeded")
	}
	if err := SyncDir(filepath.Join(dir, "nope")); err == nil {
		t.Error("SyncDir of a missing directory succeeded")
	}
}
