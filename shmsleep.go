package switchboard

import (
	"context"
	"sync"
	"sync/atomic"

	"switchboard/shm"
)

// ringSleeper is how NextMsg and NextView sleep once their spin over a
// subscription's rings found nothing: on the caller's own goroutine, in
// one futex_waitv(2) on the futex words of the rings and on a word of
// the sleeper's own (shm.Waiter), which wake kicks. Before, every sleep
// started a watcher goroutine per ring that slept in FUTEX_WAIT and then
// woke the caller through the kick channel: two goroutine hand-offs, and
// maybe two threads to wake, per wake-up.
type ringSleeper struct {
	mu       sync.Mutex // held by the one goroutine sleeping (TryLock)
	w        *shm.Waiter
	sleeping atomic.Bool // set while a goroutine sleeps or is about to
}

// kick wakes the goroutine sleeping in sleepRings, if any. wake calls it
// after it kicked s.kick: either the sleeper sees that token before it
// waits, or this sees it sleeping (both sides store, then load, each
// with a full barrier between).
func (sl *ringSleeper) kick() {
	if sl.sleeping.Load() {
		sl.w.Kick()
	}
}

// sleepRings sleeps until one of s's rings may have a message, s is
// kicked (wake), a ring is detached, or ctx ends. It reports false,
// without sleeping, when it cannot watch every ring itself: another
// goroutine sleeps for s already, or holds a ring for a moment, or
// futex_waitv(2) does not work here (a Waiter would nap 1 ms at a time;
// a watcher sleeps in FUTEX_WAIT). Rings lent out as a View are not
// watched (nothing can be read from them until their Release), as with
// watchRings, nor rings already detached: Conn.Close cancels them well
// before it removes them (after its final flush), and watching them
// would end every sleep at once.
func (s *Subscription) sleepRings(ctx context.Context) bool {
	if !shm.WaitAnyWorks() {
		return false
	}
	sl := &s.sleep
	if !sl.mu.TryLock() {
		return false
	}
	defer sl.mu.Unlock()
	if sl.w == nil {
		sl.w = shm.NewWaiter()
		sl.w.SetSpin(false) // waitFor spun already
	}
	// Flag the sleep before listing the rings: whatever changes the list
	// or lends a ring back after the listing (a ring attached, a View
	// released) kicks this sleep, and whatever did before is listed.
	since := sl.w.Kicks()
	sl.sleeping.Store(true)
	defer sl.sleeping.Store(false)
	var heldBuf [8]*subRing
	var rdBuf [8]*shm.Reader
	held, rds := heldBuf[:0], rdBuf[:0]
	defer func() {
		for _, r := range held {
			r.mu.Unlock()
		}
	}()
	for _, r := range s.ringList() {
		if r.viewOut.Load() || r.ctx.Err() != nil {
			continue
		}
		if !r.mu.TryLock() {
			return false
		}
		if r.gone {
			r.mu.Unlock()
			continue
		}
		held = append(held, r)
		rds = append(rds, r.rd)
	}
	// A ring detached (Unsubscribe, Close, a drain) ends the sleep: its
	// detacher waits for r.mu, which this goroutine holds.
	for _, r := range held {
		stop := context.AfterFunc(r.ctx, sl.w.Kick)
		defer stop()
	}
	select {
	case <-s.kick:
		return true // news before the sleep: the caller looks again
	default:
	}
	// Wait returns after a nap of at most 100 ms with nothing new; sleep
	// on then, rather than spin again: five idle subscriptions of a
	// process that spun every 100 ms cost it 3-4% of a CPU.
	for sl.w.Wait(ctx, rds, since) == nil && !sl.w.Ready(rds, since) {
	}
	return true
}
