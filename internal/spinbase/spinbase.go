// Package spinbase measures the floor under any shared-memory transport: a
// raw ping-pong between two OS processes spinning on a shared memory page,
// with no syscalls, no futexes and no scheduler calls on the measured path.
// "switchboard bench shm" runs it next to its client-API shm ping-pong and
// prints its median as baseline_rtt_p50_ns, so the report can show how far
// the client API is from what the hardware allows.
//
// # What is measured
//
// Run creates a one-page memfd, maps it MAP_SHARED and re-executes the
// running program as a child process that inherits the memfd as fd 3. The
// page holds two 64-bit words on separate 128-byte blocks (so neither the
// 64-byte cache line nor the adjacent-line prefetcher couples them): ping,
// written only by the parent, and pong, written only by the child. Each
// word has a single writer, which is how a ring's head and tail are laid
// out, so one round trip is essentially two cache-line transfers between cores:
//
//	parent: ping = k; spin until pong == k
//	child:  spin until ping == k; pong = k
//
// Both sides use sync/atomic loads and stores on the mapped memory and run
// on goroutines locked to their OS threads (runtime.LockOSThread). The
// spin loops contain no syscall, no futex and no runtime.Gosched; the
// parent looks at ctx and at the child's liveness only every 1024 round
// trips (outside the timed span) or after 65536 fruitless spins (a stall).
// There is no PAUSE instruction in the loops (Go offers none), so leaving
// a spin can cost a pipeline flush; the client API's spinning pays the same.
//
// # Timing
//
// The parent records one sample per round trip into a slice preallocated
// and pre-faulted before the run. The clock is the monotonic one, read with
// time.Since on a fixed base (one vDSO clock_gettime, no syscall with the
// tsc clocksource; cheaper than time.Now, which reads the wall clock too),
// and the readings are chained: sample i is the time from the reading that
// ended round trip i-1 to the one that ended round trip i. Every sample
// therefore includes the cost of about one clock reading (typically
// 15-30 ns; Result.ClockOverhead is this run's median of it) plus a few ns
// of loop bookkeeping. The clock's granularity can be coarser than 1 ns
// (10 ns on some KVM guests), which then quantizes the samples. Run warms up first (at least 10,000 round trips and
// 20 ms, which also lets the CPUs leave their idle frequency) and records
// nothing during the warm-up.
//
// # Cores
//
// Each process keeps one core 100% busy for the whole run, so the result
// is only meaningful with two or more CPUs that are otherwise idle: on one
// CPU the two spinners take turns by the scheduler's time slice and a
// round trip costs milliseconds. Run refuses to start with fewer than two
// CPUs (ErrTooFewCPUs). On a loaded machine the median stays usable but
// the tail (P99, Max) mostly measures preemptions. The processes are not
// pinned to particular CPUs, and runs must not overlap (two at once would
// share the same cores).
//
// # The child process
//
// The child is the same executable (os.Executable), started with an
// environment variable that ChildMain recognises, so the program's main
// function (or TestMain in tests) must call ChildMain before doing
// anything else. The child exits when the parent writes the stop value at
// the end of the run; if the parent dies instead, the kernel kills it
// (PR_SET_PDEATHSIG, SIGKILL), and as a second safety net it exits on its
// own when it sees that its parent process changed (checked every 2^20
// spins without news, never in the fast path). This package runs on Linux
// only; elsewhere Run returns ErrUnsupported.
package spinbase

import (
	"errors"
	"slices"
	"time"
)

// Result summarises the per-round-trip samples of one Run. The durations
// are round-trip times measured on the parent side and include about one
// clock reading each (see ClockOverhead).
type Result struct {
	// RoundTrips is the number of measured round trips (Run's n); warm-up
	// round trips are not counted.
	RoundTrips int
	// Min, P50, P99 and Max are the smallest sample, the median, the 99th
	// percentile (nearest rank) and the largest sample.
	Min, P50, P99, Max time.Duration
	// Mean is the average round-trip time.
	Mean time.Duration
	// ClockOverhead is the median cost of one reading of the clock used
	// for the samples, measured in the same run; subtract it from a sample
	// to estimate the bare round trip.
	ClockOverhead time.Duration
}

// ErrTooFewCPUs is returned by Run on a machine (or CPU affinity mask) with
// fewer than two CPUs, where two spinning processes can only take turns and
// the measurement would be meaningless.
var ErrTooFewCPUs = errors.New("spinbase: the spin ping-pong needs at least 2 CPUs (runtime.NumCPU() < 2); a result on one CPU would be meaningless")

// ErrUnsupported is returned by Run on systems other than Linux.
var ErrUnsupported = errors.New("spinbase: the spin ping-pong is only implemented on Linux")

// MaxRoundTrips is the largest n Run accepts; every round trip needs
// 8 bytes of preallocated sample memory.
const MaxRoundTrips = 1 << 27

// summarize sorts samples in place and computes the Result.
func summarize(samples []time.Duration) Result {
	r := Result{RoundTrips: len(samples)}
	if len(samples) == 0 {
		return r
	}
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	slices.Sort(samples)
	r.Min = samples[0]
	r.P50 = percentile(samples, 50)
	r.P99 = percentile(samples, 99)
	r.Max = samples[len(samples)-1]
	r.Mean = sum / time.Duration(len(samples))
	return r
}

// percentile returns the nearest-rank p-th percentile of the sorted,
// non-empty slice s: the smallest sample that at least p% of the samples
// do not exceed.
func percentile(s []time.Duration, p int) time.Duration {
	rank := (len(s)*p + 99) / 100 // ceil(len*p/100)
	return s[max(rank, 1)-1]
}
