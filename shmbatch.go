package switchboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"switchboard/shm"
)

// NextViews is NextView for a batch: it waits like NextView until a
// message is available, then calls fn with each message available without
// waiting, up to max of them, and returns how many it passed to fn. The
// messages queued from the socket come first (as copies), then those of
// the subscription's rings; messages from one publisher keep their order.
// A stream reader that takes what is there in one call, as Aeron's poll
// does, pays the subscription's locks, its spin and the ring's bookkeeping
// once per batch rather than once per message.
//
// The View fn gets is valid only until fn returns; fn must not keep it.
// fn may call its Release to learn whether Data was intact (false: torn by
// a publisher that does not wait for this subscription, to be discarded);
// NextViews releases the Views fn did not, and counts the torn ones as
// missed like any other loss (Dropped, the ErrSlowConsumer report). A ring
// a batch reads from is held for the whole batch, as a View holds it until
// its Release: fn must not call NextMsg, NextView or NextViews of the same
// subscription. fn holds its message's slot as a View does: a publisher
// that waits for this subscription (the default; not with
// Options.ShmDrop) and needs that slot waits for fn, and a fn that takes
// longer than the publisher's block timeout (5 s) gets the subscription
// demoted to drop. The slots of the messages before are free as soon as
// fn returned for them.
//
// The errors are NextView's, and ErrBadArgument for a max below 1 or a nil
// fn. A ctx that ends while the socket's messages are passed is reported
// with the count of those passed already; a batch read from a ring is not
// cut short by ctx. When fn ends the subscription (Unsubscribe, Close) the
// batch stops after it, and the next call reports the end.
func (s *Subscription) NextViews(ctx context.Context, max int, fn func(v *View)) (int, error) {
	if s.kind != kindSync {
		return 0, fmt.Errorf("next views: not a SubscribeSync subscription: %w", ErrBadSubscription)
	}
	if max < 1 {
		return 0, fmt.Errorf("next views: max %d, at least 1: %w", max, ErrBadArgument)
	}
	if fn == nil {
		return 0, fmt.Errorf("next views: no callback: %w", ErrBadArgument)
	}
	for {
		n, err := s.queuedViews(ctx, max, fn)
		if err != nil {
			return n, err
		}
		if n < max && s.nrings.Load() > 0 {
			n += s.pollViews(max-n, fn)
		}
		if n > 0 {
			return n, nil
		}
		if s.nrings.Load() == 0 {
			select {
			case <-s.kick:
			case <-ctx.Done():
			}
			continue
		}
		s.waitFor(ctx, func() bool {
			n = s.pollViews(max, fn)
			return n > 0
		})
		if n > 0 {
			return n, nil
		}
	}
}

// queuedViews passes fn up to max messages queued from the socket, as
// copies, taking them from the queue up to 64 at a time; one View serves
// the whole call.
func (s *Subscription) queuedViews(ctx context.Context, max int, fn func(v *View)) (n int, err error) {
	var v *View
	var batch [64]*Msg
	for n < max {
		k, perr := s.popQueuedN(ctx, "switchboard: next views", batch[:min(len(batch), max-n)])
		if k == 0 {
			err = perr
			break
		}
		if v == nil {
			v = s.spareView()
		}
		for i, m := range batch[:k] {
			batch[i] = nil
			if s.isShut.Load() {
				// fn unsubscribed (or the Conn closed): the rest of the
				// copies taken are discarded, as the queue was.
				clear(batch[i:k])
				k = 0
				break
			}
			*v = View{Subject: m.Subject, Reply: m.Reply, Header: m.Header, Data: m.Data, Sub: s, batch: true}
			fn(v)
			n++
		}
		if k == 0 {
			break
		}
	}
	if v != nil {
		v.batch, v.done = false, false
		v.Release() // hands the View back for the next copy
	}
	return n, err
}

// pollViews passes up to max messages from the subscription's rings to
// fn without waiting, ring after ring, and returns how many it passed.
// Rings another caller holds are skipped.
func (s *Subscription) pollViews(max int, fn func(v *View)) int {
	n := 0
	for _, r := range s.ringList() {
		if n == max {
			break
		}
		if !r.mu.TryLock() {
			continue
		}
		if r.gone {
			r.mu.Unlock()
			continue
		}
		got, stop := s.ringViews(r, max-n, fn)
		n += got
		if stop {
			break
		}
	}
	return n
}

// ringViews passes up to max messages of r to fn, holding r.mu (which the
// caller took) for the whole batch and letting go of it before it
// returns. stop reports that the subscription takes no more messages (its
// AutoUnsubscribe count was reached).
//
// It is pollView in a loop with the per-message costs moved out of it:
// the ring is read with shm.Reader.Poll, which publishes the reader's
// position once per batch; r is marked lent out once, the connection's
// counters are added once, and a sleeper is kicked once, at the end.
func (s *Subscription) ringViews(r *subRing, max int, fn func(v *View)) (n int, stop bool) {
	var (
		msgs, size uint64 // valid frames read, for the connection's counters
		lent       bool
		done       bool  // stop reading r: detached, or past its drain
		final      *View // the copy of the message that reached the AutoUnsubscribe count
		last       bool
	)
	// Views fn got and that turned out torn (Poll's check after fn, or a
	// Release in fn) are counted as missed at the end, from the reader's
	// Torn count; release takes out of that count the slots this
	// function lets go of itself, which it counts as pollView does.
	torn := r.rd.Stats().Torn
	release := func() bool {
		ok := r.rd.Release()
		if !ok {
			torn++
		}
		return ok
	}
	take := func(data []byte, seq, missed uint64) bool {
		if r.drainPending.Load() {
			t := r.rd.Stats().Torn
			beyond := s.beyondDrain(r, shm.Msg{Seq: seq, Missed: missed})
			torn += r.rd.Stats().Torn - t // released there, not by fn
			if beyond {
				done = true
				return false // published after the drain of r began: not for us
			}
		}
		if !lent {
			// From here r counts as lent out (see pollView).
			r.viewOut.Store(true)
			lent = true
		}
		if missed > 0 {
			s.missed(missed)
		}
		v, body, ok := s.ringView(r, data)
		if !ok {
			release()
			s.missed(1)
			if r.dropPending.Load() {
				done = true // detached meanwhile: endViews unmaps r
				return false
			}
			return true
		}
		msgs++
		size += body
		ok, last = s.countView()
		switch {
		case !ok:
			// The AutoUnsubscribe count was reached: nothing more.
			release()
			stop = true
			return false
		case last:
			// Passed on as a copy once r is let go of: ending the
			// subscription detaches its rings (finalView).
			final = s.spareView()
			*final = View{Subject: v.Subject, Reply: v.Reply, Header: v.Header, Data: bytes.Clone(v.Data), Sub: s}
			v.ring = nil
			if !release() {
				s.missed(1)
				final = nil
			}
			return false
		}
		v.batch = true
		fn(v)
		v.done, v.ring = true, nil // Poll releases the slot, counting it if torn
		n++
		if r.dropPending.Load() {
			done = true // detached while lent out: endViews unmaps r
			return false
		}
		return true
	}
	func() {
		defer func() {
			if s.endViews(r, lent) {
				last, stop = true, true // the drain reached the count: end below
			}
		}()
		for n < max && !stop && !done && !last {
			if _, err := r.rd.Poll(max-n, take); err != nil {
				if err == shm.ErrEmpty {
					break // the common case while spinning: no errors.Is walk
				}
				if errors.Is(err, shm.ErrCorrupt) {
					continue // skipped a corrupt slot: look further
				}
				if errors.Is(err, shm.ErrClosed) {
					s.conn.dropRingLocked(s, r)
				}
				break
			}
		}
		if t := r.rd.Stats().Torn - torn; t > 0 {
			s.missed(t)
		}
	}()
	if msgs > 0 {
		c := s.conn
		c.inMsgs.Add(msgs)
		c.inBytes.Add(size)
	}
	if last {
		s.conn.endCounted(s)
		stop = true
		if final != nil {
			fn(final)
			final.Release()
			n++
		}
	}
	return n, stop
}

// endViews ends a batch of ringViews: it ends r's lent-out state (which
// unmaps r if it was detached meanwhile), lets go of r.mu and kicks
// another goroutine that may sleep without watching r. ended reports that
// the unmapping reached the AutoUnsubscribe count (a drain), and the
// caller must call endCounted.
func (s *Subscription) endViews(r *subRing, lent bool) (ended bool) {
	if !lent {
		r.mu.Unlock()
		return false
	}
	_, ended = s.unlendLocked(r)
	r.mu.Unlock()
	s.sleep.kick()
	return ended
}
