//go:build !linux

package shm

import "time"

// futexWait polls: without futexes a sleeper just naps briefly and
// rechecks. Only Linux has memfd regions; this keeps in-process rings usable.
func futexWait(addr *uint32, val uint32, d time.Duration) {
	time.Sleep(min(d, time.Millisecond))
}

func futexWake(addr *uint32) {}

type futexWaitv struct {
	val      uint64
	uaddr    uint64
	flags    uint32
	reserved uint32
}

const (
	futex2Size32 = 0x02
	maxWaitv     = 128
)

func futexWaitAny(ws []futexWaitv, d time.Duration) bool { return false }

// WaitAnyWorks reports whether futex_waitv(2) works here: only on Linux.
func WaitAnyWorks() bool { return false }
