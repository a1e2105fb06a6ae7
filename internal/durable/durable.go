// Package durable writes files so that they survive a crash: the one place where kubemail's
// write → fsync → rename → fsync(directory) sequence is spelled out. The mailbox store, the
// outbound queue, the TLS and DKIM key files all use it; a 250 reply or a stored UID is only
// as good as these few lines.
package durable

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrUnsupported is returned by WriteAnonymous where files without a name cannot be made.
var ErrUnsupported = errors.New("anonymous files are not supported here")

// SyncDir fsyncs a directory, making the entries created, renamed or removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s for fsync: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// WriteNew creates path, which must not exist, writes prefix and then body into it, fsyncs and
// closes it, and returns its size. On error the file is removed. The new directory entry is not
// yet durable: rename the file into place and SyncDir its directory (or use Move).
func WriteNew(path string, perm os.FileMode, prefix []byte, body io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, fmt.Errorf("creating %s: %w", path, err)
	}
	n, err := f.Write(prefix)
	size := int64(n)
	if err == nil && body != nil {
		var m int64
		m, err = io.Copy(f, body)
		size += m
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	return size, nil
}

// Move renames from to to and fsyncs to's directory. On error from is removed.
func Move(from, to string) error { return move(from, to, SyncDir) }

// Replace makes path hold data, atomically: readers see the old content or the new, never a
// mix, and after a crash one of the two. tmp is the scratch file to use, on path's file system
// (it is overwritten).
func Replace(path, tmp string, data []byte, perm os.FileMode) error {
	return replace(path, tmp, data, perm, SyncDir)
}

func move(from, to string, syncDir func(string) error) error {
	if err := os.Rename(from, to); err != nil {
		os.Remove(from)
		return err
	}
	return syncDir(filepath.Dir(to))
}

func replace(path, tmp string, data []byte, perm os.FileMode, syncDir func(string) error) error {
	os.Remove(tmp)
	if _, err := WriteNew(tmp, perm, data, nil); err != nil {
		return err
	}
	return move(tmp, path, syncDir)
}
