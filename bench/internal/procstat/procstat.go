// Package procstat reads what the benchmarks report of a server's processes and of the machine
// from /proc (Linux): CPU time, resident memory, the load average and how busy the CPUs were.
package procstat

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat (100 on Linux).
const clockTicks = 100

// statFields returns the fields of /proc/PID/stat after the command name: [0] is the state,
// [1] the parent, [11..14] utime, stime, cutime and cstime.
func statFields(pid int) []string {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return nil
	}
	return f
}

func ticks(f []string, from, to int) time.Duration {
	var n int64
	for i := from; i <= to; i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		n += v
	}
	return time.Duration(n) * time.Second / clockTicks
}

// CPU is the CPU time so far of pid, of the children it has waited for, and of its live
// descendants: for Postfix's master, all its daemons, past and present. Take it before and after
// a measure and subtract; a descendant that exits without being waited for between the two
// readings is missed (none does: the master waits for its children).
func CPU(pid int) time.Duration {
	f := statFields(pid)
	if f == nil {
		return 0
	}
	total := ticks(f, 11, 14)
	for _, k := range Children(pid) {
		total += CPU(k)
	}
	return total
}

// HWM is pid's peak resident set (VmHWM) in bytes.
func HWM(pid int) int64 { return statusField(pid, "VmHWM:") }

// RSS is pid's resident set (VmRSS) in bytes.
func RSS(pid int) int64 { return statusField(pid, "VmRSS:") }

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

// parent is a process's parent; 0 if it is gone.
func parent(pid int) int {
	f := statFields(pid)
	if f == nil {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// Children lists the live processes whose parent is pid.
func Children(pid int) []int {
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
		if parent(p) == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// TreePSS sums the proportional set size (shared pages divided among their users) over pid and
// its children: Postfix's master and the daemons it spawned. Summing RSS instead would count the
// shared libraries once per process.
func TreePSS(pid int) int64 {
	total := pss(pid)
	for _, k := range Children(pid) {
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

// FindPID returns the first process whose command line has arg as one of its arguments; 0 if
// none.
func FindPID(arg string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(cmdline), "\x00") {
			if a == arg {
				return p
			}
		}
	}
	return 0
}

// LoadAverage is the 1, 5 and 15 minute load average, as uptime shows it.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Busy is the machine's CPU time so far: busy (all but idle and iowait) and in all, summed over
// its CPUs. The busy share of a measure is the ratio of the differences of two readings.
func Busy() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		d := time.Duration(n) * time.Second / clockTicks
		total += d
		if i != 3 && i != 4 && i < 8 { // not idle, iowait, guest
			busy += d
		}
	}
	return busy, total
}

// Meter measures the CPU some process trees and the machine use between Start and Stop.
type Meter struct {
	pids                []int
	cpu0, busy0, total0 time.Duration
	CPU                 time.Duration // the trees' CPU time
	BusyShare           float64       // of the machine's CPU time, busy (0..1)
}

// Start begins a measure of the trees of pids (none: the machine only).
func Start(pids ...int) *Meter {
	m := &Meter{pids: pids}
	for _, p := range pids {
		m.cpu0 += CPU(p)
	}
	m.busy0, m.total0 = Busy()
	return m
}

// Stop ends the measure and fills CPU and BusyShare.
func (m *Meter) Stop() {
	var cpu time.Duration
	for _, p := range m.pids {
		cpu += CPU(p)
	}
	m.CPU = cpu - m.cpu0
	busy, total := Busy()
	if total > m.total0 {
		m.BusyShare = float64(busy-m.busy0) / float64(total-m.total0)
	}
}

// SampleMax stores in *peak the largest value measure returns, sampled every 200 ms until the
// returned stop function is called.
func SampleMax(peak *int64, measure func() int64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
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
	return func() { close(done); <-finished }
}

// Median is the median of the rounds' figures (0 for none).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
