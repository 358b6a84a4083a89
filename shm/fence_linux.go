package shm

import (
	"sync"

	"golang.org/x/sys/unix"
)

// membarrier(2) commands.
const (
	mbQuery                    = 0
	mbGlobalExpedited          = 1 << 1
	mbRegisterGlobalExpedited  = 1 << 2
	mbPrivateExpedited         = 1 << 3
	mbRegisterPrivateExpedited = 1 << 4
)

var fenceState struct {
	once sync.Once
	ok   bool
}

// asymmetricFences reports whether this process can pair plain stores on
// its hot path with membarrier(2) on the rare side of a Dekker exchange:
// the kernel supports the expedited commands and this process registered
// for both (global, for readers in other processes; private, for
// RemoveReader in this one). Registration happens once, at the first call.
func asymmetricFences() bool {
	fenceState.once.Do(func() {
		r, _, e := unix.Syscall(unix.SYS_MEMBARRIER, mbQuery, 0, 0)
		const want = mbGlobalExpedited | mbRegisterGlobalExpedited | mbPrivateExpedited | mbRegisterPrivateExpedited
		if e != 0 || r&want != want {
			return
		}
		if _, _, e := unix.Syscall(unix.SYS_MEMBARRIER, mbRegisterGlobalExpedited, 0, 0); e != 0 {
			return
		}
		if _, _, e := unix.Syscall(unix.SYS_MEMBARRIER, mbRegisterPrivateExpedited, 0, 0); e != 0 {
			return
		}
		fenceState.ok = true
	})
	return fenceState.ok
}

// globalBarrier runs a full memory barrier on every CPU that runs a thread
// of a process registered with asymmetricFences, and reports whether it
// could. A reader calls it between storing "sleeping" and loading the write
// sequence, in place of the barrier a fenceless writer leaves out.
func globalBarrier() bool {
	_, _, e := unix.Syscall(unix.SYS_MEMBARRIER, mbGlobalExpedited, 0, 0)
	return e == 0
}

// privateBarrier is globalBarrier for the threads of this process only.
func privateBarrier() bool {
	if !asymmetricFences() {
		return false
	}
	_, _, e := unix.Syscall(unix.SYS_MEMBARRIER, mbPrivateExpedited, 0, 0)
	return e == 0
}
