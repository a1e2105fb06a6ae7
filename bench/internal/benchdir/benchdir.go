// Package benchdir gives the benchmarks a temporary directory where each run's files land away
// from the rest of the machine's file churn, and makes it the TMPDIR of the benchmark and of
// everything it starts.
//
// Why: on ext4 without a journal (this machine's root file system) the inode allocator skips
// every inode of a block group deleted in the last seconds to minutes, testing each in turn
// (fs/ext4/ialloc.c, recently_deleted), so creating a file in a group where many files were
// just deleted costs up to a millisecond instead of tens of microseconds. /tmp's groups see
// every `go build` and test of everyone on the machine come and go; a mail server makes one
// file per message (Postfix two), so the same run measured 0.7 ms or 0.03 ms per file created
// depending on what others had just deleted. The directory gets the "top of a directory
// hierarchy" flag (FS_TOPDIR_FL, chattr +T), with which ext4's Orlov allocator spreads the
// directories made in it over block groups with more free inodes than the average, away from
// the churn; both servers of a comparison get the same treatment. Elsewhere the flag is
// ignored or refused, and nothing else changes.
package benchdir

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// fsTopdirFl is FS_TOPDIR_FL of linux/fs.h.
const fsTopdirFl = 0x00020000

// Setup makes the directory, sets TMPDIR to it and returns it with the function that removes it.
func Setup(prefix string) (string, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	// virtual(8) delivers as nobody, who must reach Postfix's temp dir through this one.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	if f, err := os.Open(dir); err == nil {
		if flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS); err == nil {
			unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFl))
		}
		f.Close()
	}
	if err := os.Setenv("TMPDIR", dir); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("setting TMPDIR: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
