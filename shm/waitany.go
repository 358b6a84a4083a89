package shm

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// Waiter waits for any of several readers at once. A process that reads
// many rings (a client with many subscriptions) uses one goroutine and one
// Waiter for all of them, rather than a goroutine per ring that spins and
// sleeps on its own: on a machine with few CPUs, ten readers spinning at
// once take the CPU from the writer and from each other, and ten sleepers
// cost ten wake-ups per message. A Waiter spins once over every reader,
// then sleeps in one futex_waitv(2) on every ring's futex word and on a
// word of its own that Kick changes.
//
// A Waiter is used by one goroutine at a time; Kick and Kicks may be
// called from any goroutine.
type Waiter struct {
	kick   atomic.Uint32 // the Waiter's own futex word
	spin   Spin
	noSpin bool
	ws     []futexWaitv
}

// NewWaiter returns a Waiter that spins before it sleeps.
func NewWaiter() *Waiter { return new(Waiter) }

// Kicks returns how often Kick was called (mod 2^32). Load it before
// checking what a Kick announces, and pass it to Wait: a Kick in between
// makes Wait return at once instead of being missed.
func (w *Waiter) Kicks() uint32 { return w.kick.Load() }

// Kick makes a Wait in progress return, and any Wait given an older Kicks
// value.
func (w *Waiter) Kick() {
	w.kick.Add(1)
	futexWake(w.kickAddr())
}

func (w *Waiter) kickAddr() *uint32 { return (*uint32)(unsafe.Pointer(&w.kick)) }

// SetSpin turns the spin before Wait sleeps on or off (on for a new
// Waiter). The spin is adaptive like a Reader's (see Spin).
func (w *Waiter) SetSpin(on bool) { w.noSpin = !on }

// Wait returns when one of rs has something to return (a message past its
// position, or its ring closed), when the kick count differs from since,
// or with ctx's error when ctx ends. It may also return nil spuriously:
// the caller polls its readers and calls Wait again. It reads nothing and
// releases no view. Each reader must not be used by another goroutine
// meanwhile, as with Reader.Wait.
//
// While it sleeps, every reader with a cursor is flagged as sleeping, so
// a tracking writer wakes it. Up to 127 readers are slept on; with more,
// the rest are polled every millisecond.
func (w *Waiter) Wait(ctx context.Context, rs []*Reader, since uint32) error {
	if w.done(rs, since) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !w.noSpin {
		if spinFor(w.spin.Budget(), func() bool { return w.done(rs, since) }) {
			w.spin.Found()
			return nil
		}
		w.spin.Slept()
	}
	ws := append(w.ws[:0], futexWaitv{val: uint64(since), uaddr: uint64(uintptr(unsafe.Pointer(w.kickAddr()))), flags: futex2Size32})
	fenceless := false
	n := 0
	for _, r := range rs {
		if len(ws) == maxWaitv {
			break
		}
		f, fl := r.flagSleep()
		fenceless = fenceless || fl
		ws = append(ws, futexWaitv{val: uint64(f), uaddr: uint64(uintptr(unsafe.Pointer(r.futex))), flags: futex2Size32})
		n++
	}
	w.ws = ws
	defer func() {
		for _, r := range rs[:n] {
			r.clearSleep()
		}
	}()
	d := maxSleep
	if n < len(rs) {
		d = fencelessNap // the readers beyond maxWaitv are polled
	}
	if fenceless && !globalBarrier() {
		d = fencelessNap // see Reader.sleepOn
	}
	// The Dekker check of Reader.sleepOn, for every reader at once.
	if w.done(rs, since) {
		return nil
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, w.Kick)
		defer stop()
	}
	dl, hasDL := ctx.Deadline()
	if hasDL {
		d = min(d, time.Until(dl))
	}
	if d > 0 && !futexWaitAny(ws, d) {
		// No futex_waitv (Linux before 5.16): nap on the kick word.
		futexWait(w.kickAddr(), since, min(d, fencelessNap))
	}
	runtime.KeepAlive(w)
	if err := ctx.Err(); err != nil {
		return err
	}
	if hasDL && !time.Now().Before(dl) {
		return context.DeadlineExceeded // ctx's timer has not fired yet
	}
	return nil
}

// Ready reports whether one of rs has something to return (a message
// past its position, or its ring closed) or the kick count differs from
// since: what makes Wait return, other than its naps ending. A caller
// that must not return to its spin after a nap waits again while Ready is
// false. The readers are used as by Wait.
func (w *Waiter) Ready(rs []*Reader, since uint32) bool { return w.done(rs, since) }

// done reports whether a reader has something or a Kick came.
func (w *Waiter) done(rs []*Reader, since uint32) bool {
	if w.kick.Load() != since {
		return true
	}
	for _, r := range rs {
		if r.ready() {
			return true
		}
	}
	return false
}
