package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on Linux).
const clockTicks = 100

// procStats returns a process's peak resident set (VmHWM) and its CPU time so far.
func procStats(pid int) (int64, time.Duration) {
	hwm := statusField(pid, "VmHWM:")
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return hwm, 0
	}
	// Fields after the parenthesised command name; utime and stime are fields 14 and 15.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return hwm, 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return hwm, time.Duration(utime+stime) * time.Second / clockTicks
}

// statusField reads a "kB" field of /proc/PID/status in bytes; 0 if unreadable.
func statusField(pid int, name string) int64 {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// parentPID reads a process's parent from /proc/PID/stat; 0 if it is gone.
func parentPID(pid int) int {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// childrenOf lists the live processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parentPID(p) == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// treePSS sums the proportional set size (shared pages divided among their users) over pid and
// its children: Postfix's master and the daemons it spawned. Summing RSS instead would count the
// shared libraries once per process.
func treePSS(pid int) int64 {
	total := pss(pid)
	for _, k := range childrenOf(pid) {
		total += pss(k)
	}
	return total
}

func pss(pid int) int64 {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// becomeSubreaper makes orphaned descendants (the Postfix master, which daemonizes) children of
// this process, so that reap can collect them instead of leaving zombies behind.
func becomeSubreaper() {
	const prSetChildSubreaper = 36
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}

// reapAll collects every exited child (with the subreaper: the Postfix master and the daemons it
// left behind) and returns the CPU time they and the children they waited for used. Call it only
// while no exec.Cmd of this process is running, or it would take their exit status.
func reapAll() time.Duration {
	var total time.Duration
	for {
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, &ru)
		if err != nil || pid <= 0 {
			return total
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
}

// sampleMax stores in *peak the largest value measure returns, sampled every 200 ms until the
// returned stop function is called.
func sampleMax(peak *int64, measure func() int64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			*peak = max(*peak, measure())
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
