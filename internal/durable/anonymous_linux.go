package durable

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// WriteAnonymous writes prefix and body into a new file in dir that has no name yet
// (O_TMPFILE), fsyncs it and returns it open, with its size. Link gives it its names; a file
// never linked disappears when closed, even after a crash, so no half-written file is ever
// visible and none is left behind. It returns ErrUnsupported where the kernel or the file system
// (NFS, for one) cannot make such files: then write a named file and rename it (WriteNew, Move).
func WriteAnonymous(dir string, perm os.FileMode, prefix []byte, body io.Reader) (*os.File, int64, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return nil, 0, ErrUnsupported
		}
		return nil, 0, fmt.Errorf("creating a file in %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir+"/(anonymous)")
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
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("writing a file in %s: %w", dir, err)
	}
	return f, size, nil
}

// Link gives f, from WriteAnonymous, the name path (which must not exist). The new entry is not
// durable until path's directory is synced (SyncDir). It fails with an error matching
// unix.EXDEV when path is on another file system.
func Link(f *os.File, path string) error {
	// linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the /proc path works for anyone.
	proc := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW); err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: path, Err: err}
	}
	return nil
}
