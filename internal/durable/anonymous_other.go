//go:build !linux

package durable

import (
	"io"
	"os"
)

// WriteAnonymous needs Linux's O_TMPFILE; elsewhere callers write named files.
func WriteAnonymous(dir string, perm os.FileMode, prefix []byte, body io.Reader) (*os.File, int64, error) {
	return nil, 0, ErrUnsupported
}

// Link is never reached without WriteAnonymous.
func Link(f *os.File, path string) error { return ErrUnsupported }
