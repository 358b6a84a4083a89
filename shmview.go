package switchboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"switchboard/internal/protocol"
	"switchboard/shm"
)

// View is a message read in place by NextView. When it came through a
// shared-memory ring, Data is the ring's slot itself, not a copy: it is
// valid until Release, must not be written to, and may be overwritten by a
// publisher that does not wait for this subscription (Options.ShmDrop).
// Release then reports false and what was read must be discarded. A View
// of a message that came over the socket holds a copy, and its Release
// always reports true. After Release the View may be reused by the next
// NextView: do not keep it.
type View struct {
	// Subject the message was published to.
	Subject string
	// Reply is the subject to respond to ("" when none).
	Reply string
	// Header is nil when the message has no header fields.
	Header Header
	// Data is the payload: read-only, valid until Release.
	Data []byte
	// Sub is the subscription that received the message.
	Sub *Subscription

	ring  *subRing // held (ring.mu) until Release; nil for a copied message
	done  bool
	batch bool // passed to a NextViews callback: the batch keeps ring.mu
}

// Release ends the view and reports whether Data was intact all along:
// false means a publisher overwrote the slot while it was held, so the
// bytes read may be torn. Act on what you read only after Release returned
// true. Release is idempotent; until it is called, the ring the view is in
// is read by nobody else, so call it promptly.
func (v *View) Release() bool {
	if v.done {
		return true
	}
	v.done = true
	r := v.ring
	if r == nil {
		if sub := v.Sub; sub != nil && !v.batch {
			// A copy: its View may serve the next one (spareView).
			sub.mu.Lock()
			sub.spare = v
			sub.mu.Unlock()
		}
		return true
	}
	v.ring = nil
	ok := r.rd.Release()
	if v.batch {
		// Inside NextViews' fn: the batch goes on holding r, and counts
		// a torn view as missed at its end (shm.Reader.Poll).
		return ok
	}
	_, last := v.Sub.unlendLocked(r) // unmaps r if it was detached while lent out
	r.mu.Unlock()
	v.Sub.sleep.kick() // another goroutine may sleep without watching r
	if !ok {
		v.Sub.missed(1)
	}
	if last {
		v.Sub.conn.endCounted(v.Sub)
	}
	return ok
}

// Respond publishes data to the view's reply subject over the Conn it was
// received on (it returns ErrNoReply without one).
func (v *View) Respond(data []byte) error {
	if v.Reply == "" {
		return ErrNoReply
	}
	return v.Sub.conn.publish(nil, v.Reply, "", nil, data, true)
}

// NextView is NextMsg without the copy: it returns the next message of a
// SubscribeSync subscription as a View, in place in the shared-memory ring
// it came through (see View). Messages that came over the socket are
// returned too, as copies, in the order they arrived relative to each
// other; messages from one publisher keep their order.
func (s *Subscription) NextView(ctx context.Context) (*View, error) {
	if s.kind != kindSync {
		return nil, fmt.Errorf("next view: not a SubscribeSync subscription: %w", ErrBadSubscription)
	}
	for {
		m, err := s.popQueued(ctx, "switchboard: next view")
		if err != nil {
			return nil, err
		}
		if m != nil {
			v := s.spareView()
			*v = View{Subject: m.Subject, Reply: m.Reply, Header: m.Header, Data: m.Data, Sub: s}
			return v, nil
		}
		if s.nrings.Load() == 0 {
			select {
			case <-s.kick:
			case <-ctx.Done():
			}
			continue
		}
		var v *View
		s.waitFor(ctx, func() bool {
			v = s.pollView()
			return v != nil
		})
		if v != nil {
			return v, nil
		}
	}
}

// spareView returns a View for a copied message: the last one released
// (View.Release hands it back), or a new one. A View is handed out once:
// two goroutines reading one subscription never get the same one (they
// did, when this reused the last View returned if its done flag said it
// was released, a flag its holder wrote without the lock).
func (s *Subscription) spareView() *View {
	s.mu.Lock()
	v := s.spare
	s.spare = nil
	s.mu.Unlock()
	if v == nil {
		v = new(View)
	}
	return v
}

// pollView takes the next message of the first ring that has one, as a
// view holding that ring, or returns nil.
func (s *Subscription) pollView() *View {
	for _, r := range s.ringList() {
		if !r.mu.TryLock() {
			continue
		}
		if r.gone {
			r.mu.Unlock()
			continue
		}
		ended := false // the drain of a ring detached meanwhile reached the AutoUnsubscribe count
		for {
			// TakeNext's message has nothing missed before it; only the
			// drain check needs its sequence (Pos()-1). No Msg is built
			// for it: zeroing one cost a hop 3 ns.
			data, ok := r.rd.TakeNext()
			var missed uint64
			if !ok {
				m, err := r.rd.TryNext()
				if err == shm.ErrEmpty {
					break // the common case while spinning: no errors.Is walk
				}
				if errors.Is(err, shm.ErrCorrupt) {
					continue
				}
				if errors.Is(err, shm.ErrClosed) {
					s.conn.dropRingLocked(s, r)
				}
				if err != nil {
					break
				}
				data, missed = m.Data, m.Missed
			}
			if r.drainPending.Load() && s.beyondDrain(r, shm.Msg{Seq: r.rd.Pos() - 1, Missed: missed}) {
				break // published after the drain of r began: not for us
			}
			// From here r counts as lent out, so that shmDetachAll
			// (AutoUnsubscribe, Unsubscribe, Close on another goroutine)
			// leaves its unmapping to us instead of waiting for r.mu.
			r.viewOut.Store(true)
			if missed > 0 {
				s.missed(missed)
			}
			v, body, ok := s.ringView(r, data)
			if !ok {
				r.rd.Release()
				s.missed(1)
				var dropped bool
				if dropped, ended = s.unlendLocked(r); dropped {
					break // detached meanwhile
				}
				continue
			}
			s.conn.inMsgs.Add(1)
			s.conn.inBytes.Add(body)
			take, last := s.countView()
			switch {
			case !take:
				// The AutoUnsubscribe count was reached: nothing more.
				r.rd.Release()
				_, ended = s.unlendLocked(r)
				r.mu.Unlock()
				if ended {
					s.conn.endCounted(s)
				}
				return nil
			case last:
				return s.finalView(r, v)
			}
			return v // r.mu stays held until Release
		}
		r.mu.Unlock()
		if ended {
			s.conn.endCounted(s)
			return nil
		}
	}
	return nil
}

// unlendLocked ends r's lent-out state and unmaps r if it was detached
// meanwhile (reporting dropped), after the drain a finishing subscription
// asked for; last reports that the drain reached the AutoUnsubscribe
// count, and the caller must call endCounted once it let go of r.mu.
// Called with r.mu held.
func (s *Subscription) unlendLocked(r *subRing) (dropped, last bool) {
	r.viewOut.Store(false)
	if r.dropPending.Load() {
		return true, s.conn.detachRingLocked(s, r)
	}
	return false, false
}

// finalView turns v, the view that reached the AutoUnsubscribe count, into
// a copy, lets go of its ring and ends the subscription (which detaches
// the rings, so r.mu must be free). It returns nil if the slot was
// overwritten meanwhile (counted as missed). Called with r.mu held.
func (s *Subscription) finalView(r *subRing, v *View) *View {
	cp := s.spareView()
	*cp = View{Subject: v.Subject, Reply: v.Reply, Header: v.Header, Data: bytes.Clone(v.Data), Sub: s}
	v.ring = nil
	ok := r.rd.Release()
	s.unlendLocked(r)
	r.mu.Unlock()
	s.conn.endCounted(s)
	if !ok {
		s.missed(1)
		return nil
	}
	return cp
}

// ringView checks the frame in data, a message's view, and makes it r's
// View; body is the frame's body size, for the statistics.
func (s *Subscription) ringView(r *subRing, data []byte) (v *View, body uint64, ok bool) {
	if b, subj, reply, ok := r.cachedBody(data); ok {
		// A bare message, or a frame that starts like the last one, which
		// passed r's checks: no Frame to build, no checks to repeat.
		v = &r.view
		v.Subject, v.Reply, v.Header = subj, reply, nil
		v.Data, v.Sub, v.ring, v.done, v.batch = b, s, r, false, false
		return v, uint64(len(b)), true
	}
	var f shm.Frame
	if !r.frame(data, &f) {
		return nil, 0, false
	}
	// r.mu is held from here until Release, so r's own View is free: the
	// one it lent before was released.
	// Field by field: a composite literal is built on the stack and
	// copied, which cost the 16 B round trip a few ns.
	v = &r.view
	v.Subject, v.Reply, v.Header = f.Subject, f.Reply, nil
	v.Data, v.Sub, v.ring, v.done, v.batch = f.Data(), s, r, false, false
	if f.HdrLen > 0 {
		h, err := protocol.ParseHeader(f.Header())
		if err == nil && len(h.Fields) > 0 {
			v.Header = Header(h.Fields)
		}
	}
	return v, uint64(len(f.Body)), true
}
