package shm

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations. Deliberately not FUTEX_PRIVATE_FLAG: the word lives in
// memory shared between processes.
const (
	futexWaitOp = 0 // FUTEX_WAIT
	futexWakeOp = 1 // FUTEX_WAKE
)

// futexWait sleeps while *addr == val, for at most d. Spurious returns,
// EAGAIN (the word already changed) and EINTR are all fine for callers,
// which recheck the ring.
func futexWait(addr *uint32, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitOp, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWake wakes every thread sleeping on addr, in any process.
func futexWake(addr *uint32) {
	unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, uintptr(1<<31-1), 0, 0, 0)
}

// futexWaitv is struct futex_waitv of futex_waitv(2).
type futexWaitv struct {
	val      uint64
	uaddr    uint64
	flags    uint32
	reserved uint32
}

// futex2Size32 is FUTEX2_SIZE_U32: a 32-bit word, not process-private.
const futex2Size32 = 0x02

// maxWaitv is the most words one futex_waitv call takes (FUTEX_WAITV_MAX).
const maxWaitv = 128

// futexWaitAny sleeps until one of the words in ws no longer holds its
// value, a FUTEX_WAKE on one of them, or d passed. It reports false if
// futex_waitv is not available (before Linux 5.16, or refused by a
// seccomp filter); the caller then naps.
func futexWaitAny(ws []futexWaitv, d time.Duration) bool {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return false
	}
	ts = unix.NsecToTimespec(ts.Nano() + int64(d)) // futex_waitv takes an absolute time
	_, _, e := unix.Syscall6(unix.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&ws[0])), uintptr(len(ws)), 0,
		uintptr(unsafe.Pointer(&ts)), unix.CLOCK_MONOTONIC, 0)
	switch e {
	case 0, unix.ETIMEDOUT, unix.EAGAIN, unix.EINTR:
		return true
	}
	// ENOSYS (before 5.16), or EPERM from a seccomp filter: the caller
	// naps instead, rather than spinning on an error.
	waitvFailed.Store(true)
	return false
}

var (
	waitvFailed atomic.Bool // a futex_waitv call failed: it does not work here
	waitvProbe  sync.Once
)

// WaitAnyWorks reports whether futex_waitv(2), which Waiter.Wait sleeps
// in, works in this process: not before Linux 5.16, nor under a seccomp
// filter that predates it. Without it a Waiter naps 1 ms at a time, which
// is fine for a pump that loops anyway but not for a caller that would
// rather sleep on one ring with FUTEX_WAIT. It tries the call once (on a
// word that does not hold the value asked for, so it returns at once).
func WaitAnyWorks() bool {
	waitvProbe.Do(func() {
		var word uint32
		futexWaitAny([]futexWaitv{{val: 1, uaddr: uint64(uintptr(unsafe.Pointer(&word))), flags: futex2Size32}}, time.Millisecond)
	})
	return !waitvFailed.Load()
}
