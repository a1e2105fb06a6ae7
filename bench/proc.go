package main

import (
	"syscall"
)

// becomeSubreaper makes orphaned descendants (the Postfix master, which daemonizes) children of
// this process, so that reapAll can collect them instead of leaving zombies behind.
func becomeSubreaper() {
	const prSetChildSubreaper = 36
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}

// reapAll collects every exited child (with the subreaper: the Postfix master and the daemons it
// left behind). Call it only while no exec.Cmd of this process is running, or it would take
// their exit status.
func reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return
		}
	}
}
