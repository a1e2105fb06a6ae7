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

func TestWriteAnonymousAndLink(t *testing.T) {
	dir := t.TempDir()
	f, n, err := WriteAnonymous(dir, 0o600, []byte("head\n"), strings.NewReader("body\n"))
	if err == ErrUnsupported {
		t.Skip("no O_TMPFILE on this file system")
	}
	if err != nil || n != 10 {
		t.Fatalf("WriteAnonymous = %d, %v", n, err)
	}
	defer f.Close()
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Fatalf("the anonymous file is visible before Link: %v", names)
	}
	for _, name := range []string{"a", "b"} {
		if err := Link(f, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, name)); string(got) != "head\nbody\n" {
			t.Errorf("%s holds %q", name, got)
		}
	}
	if err := Link(f, filepath.Join(dir, "a")); err == nil {
		t.Error("Link over an existing name succeeded")
	}
}
