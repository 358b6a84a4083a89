package shm

import (
	"runtime"
	"sync/atomic"
	"time"
)

// Spin is the adaptive spin budget of something that waits for messages by
// spinning, then sleeping: how long its next wait may spin. Readers
// (Reader.Wait), Waiters and the client's NextMsg each keep one. The zero
// value is ready to use; it is safe for concurrent use (a lost update only
// costs one wait a less apt budget).
//
// The budget starts at MaxSpin. A wait that found its message while
// spinning doubles it, one that had to sleep halves it, between MinSpin
// and MaxSpin: a busy stream keeps spinning, an idle subscriber spins
// MinSpin per wake-up, and every eighth wake-up a probe (below), about
// 8 µs per wake-up on average. After every probeEvery-th wait in a row
// that slept, the next wait spins the whole MaxSpin once more (a probe);
// a probe that finds its message puts the budget back at MaxSpin.
//
// Why halve rather than grow after a sleep, and why probe: a ping-pong
// whose two threads the kernel has put on the same CPU (it does so on a
// two-CPU virtual machine whose other virtual CPU the host is busy with)
// cannot be helped by spinning. The peer's thread runs only when this one
// stops, so every spin runs to its end, and the answer comes right after
// this side sleeps. On the dev VM a fixed 50 µs spin then made every
// round trip 80–185 µs, and a spin grown to 250 µs made it 260–330 µs;
// the peer's FUTEX_WAKE took 200–300 µs, the time this side spun. Short
// spins make it about two context switches. Once the threads run on two
// CPUs again, both sides are then caught sleeping each time (a futex
// round trip is longer than a short spin), which the probes end: a probe
// finds the answer, and the other side, answered at once, finds the next.
type Spin struct {
	ns atomic.Int64 // the budget; 0: MaxSpin
	// sleeps counts the waits in a row that slept, modulo 2^32 (a
	// multiple of probeEvery: a wrap, every 2^32 sleeps, costs at most
	// one probe).
	sleeps atomic.Uint32
}

const (
	// MinSpin is the shortest spin budget.
	MinSpin = 2 * time.Microsecond
	// MaxSpin is the longest spin budget, and a new Spin's.
	MaxSpin = 50 * time.Microsecond
	// probeEvery: after every probeEvery-th wait in a row that slept,
	// the next wait spins MaxSpin.
	probeEvery = 8
)

// Budget returns how long the next wait may spin.
func (s *Spin) Budget() time.Duration {
	if n := s.sleeps.Load(); n > 0 && n%probeEvery == 0 {
		return MaxSpin
	}
	if d := time.Duration(s.ns.Load()); d > 0 {
		return d
	}
	return MaxSpin
}

// Found records a wait that found its message while spinning. When the
// budget is at MaxSpin already, as in a busy stream, it only loads: on x86
// an atomic store is an XCHG, which waits for every earlier store of the
// goroutine to leave the core, such as the message it just published into
// a ring whose reader polls that cache line.
func (s *Spin) Found() {
	probe := false
	if n := s.sleeps.Load(); n != 0 {
		probe = n%probeEvery == 0
		s.sleeps.Store(0)
	}
	d := time.Duration(s.ns.Load())
	switch {
	case d == 0:
	case probe:
		s.ns.Store(0)
	case d < MaxSpin:
		s.ns.Store(int64(min(2*d, MaxSpin)))
	}
}

// Slept records a wait that spun its whole budget without finding its
// message (it then sleeps, or finds the message at the check just before
// sleeping, or its context ended).
func (s *Spin) Slept() {
	s.sleeps.Add(1)
	d := time.Duration(s.ns.Load())
	if d == 0 {
		d = MaxSpin
	}
	s.ns.Store(int64(max(d/2, MinSpin)))
}

// spinYield is how many polls a spin makes between yields of the
// processor (runtime.Gosched) and looks at the clock.
const spinYield = 64

// spinFor calls poll until it reports true or d has passed, yielding the
// processor every spinYield calls, and reports whether poll succeeded.
//
// The yields matter at GOMAXPROCS <= 2: without them a spinning reader
// could keep a writer goroutine of the same process off the CPU.
func spinFor(d time.Duration, poll func() bool) bool {
	deadline := time.Now().Add(d)
	for i := 1; ; i++ {
		if poll() {
			return true
		}
		if i%spinYield == 0 {
			if time.Now().After(deadline) {
				return false
			}
			runtime.Gosched()
		}
	}
}
