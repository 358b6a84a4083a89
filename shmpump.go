package switchboard

import (
	"context"
	"errors"
	"sync"

	"switchboard/shm"
)

// The ring pump reads the shared-memory rings of every callback, channel
// and request subscription in this process on one goroutine, and hands
// their messages to the subscriptions as the socket reader does (copied,
// queued, delivered by the subscription's own goroutine). When no ring has
// a message it spins once over all of them and then sleeps in one
// futex_waitv(2) on all of them (shm.Waiter).
//
// One goroutine per ring was the first design: ten subscriptions on a
// 2-CPU machine meant ten goroutines spinning and sleeping on their own,
// which took the CPU from the publisher and cost ten wake-ups per burst; a
// fan-out to ten subscribers in one process ran at a quarter of the rate
// the same subscribers got over the socket. A SubscribeSync subscription
// is still read by NextMsg or NextView itself.
//
// Each ring handed to the pump counts once in its Conn's wait group until
// the pump has unmapped it, so Close still returns only after every ring
// of the Conn is gone.
var pump = &ringPump{w: shm.NewWaiter()}

type ringPump struct {
	w       *shm.Waiter
	mu      sync.Mutex
	rings   []*pumpRing // guarded by mu
	running bool        // the pump goroutine runs; guarded by mu
}

// pumpRing is one ring the pump reads, for one subscription.
type pumpRing struct {
	c    *Conn
	s    *Subscription
	r    *subRing
	stop func() bool // unregisters the kick on r.ctx
}

// pumpBatch bounds how many messages the pump takes from one ring before
// it looks at the next, so one busy ring cannot starve the others.
const pumpBatch = 64

// pumpDrainBatches bounds the batches a detached ring is drained by, so a
// publisher that keeps writing cannot keep the pump on it.
const pumpDrainBatches = 1024

// add makes the pump read r for s. Called where Conn.spawn would be: Close
// has not started waiting.
func (p *ringPump) add(c *Conn, s *Subscription, r *subRing) {
	c.wg.Add(1)
	e := &pumpRing{c: c, s: s, r: r}
	e.stop = context.AfterFunc(r.ctx, p.w.Kick) // detached or closed: come and drop it
	p.mu.Lock()
	p.rings = append(p.rings, e)
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go p.run()
	} else {
		p.w.Kick()
	}
}

// run is the pump goroutine: it exits when it has no rings left.
func (p *ringPump) run() {
	var list []*pumpRing
	var readers []*shm.Reader
	for {
		since := p.w.Kicks()
		p.mu.Lock()
		if len(p.rings) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		list = append(list[:0], p.rings...)
		p.mu.Unlock()
		found := false
		readers = readers[:0]
		for _, e := range list {
			if e.r.ctx.Err() != nil {
				p.drain(e)
				continue
			}
			switch p.read(e) {
			case pumpFound:
				found = true
			case pumpLast:
				e.c.endCounted(e.s) // detaches the ring: dropped next round
				found = true
			case pumpGone:
				p.drop(e)
				continue
			}
			readers = append(readers, e.r.rd)
		}
		if found || len(readers) == 0 {
			continue
		}
		spin := acquireSpin()
		p.w.SetSpin(spin)
		p.w.Wait(context.Background(), readers, since)
		if spin {
			releaseSpin()
		}
	}
}

const (
	pumpEmpty = iota
	pumpFound
	pumpLast // the message that reached the AutoUnsubscribe count
	pumpGone
	// Only from ringStepLocked:
	pumpSkipped // a corrupt slot was skipped
	pumpEnd     // the drain of the ring reached its end
)

// read delivers up to pumpBatch messages of e's ring.
func (p *ringPump) read(e *pumpRing) int {
	r := e.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return pumpGone
	}
	res := pumpEmpty
	for range pumpBatch {
		switch step := e.c.ringStepLocked(e.s, r); step {
		case pumpEmpty:
			return res
		case pumpEnd:
			return pumpEmpty // what was published after the drain began is not for s
		case pumpFound:
			res = pumpFound
		case pumpLast, pumpGone:
			return step
		}
	}
	return res
}

// ringStepLocked takes the next message of r and delivers it to s. It
// reports pumpFound (delivered), pumpLast (delivered, and it reached the
// AutoUnsubscribe count), pumpEmpty (nothing to read), pumpSkipped (a
// corrupt slot), pumpEnd (a message published after r's drain began,
// released undelivered) or pumpGone (closed by the publisher or the hub).
// The pump and the drain of a SubscribeSync subscription's ring
// (detachRingLocked) read through it. Called with r.mu held.
func (c *Conn) ringStepLocked(s *Subscription, r *subRing) int {
	m, err := r.next()
	switch {
	case err == shm.ErrEmpty:
		return pumpEmpty
	case errors.Is(err, shm.ErrCorrupt):
		return pumpSkipped
	case err != nil:
		return pumpGone
	case s.beyondDrain(r, m):
		return pumpEnd
	case c.ringDeliver(s, r, m):
		return pumpLast
	}
	return pumpFound
}

// drain hands over what a detached ring (unsubscribed, drained, its Conn
// closed) holds already, as the socket reader does with what it has read,
// then unmaps it.
func (p *ringPump) drain(e *pumpRing) {
	res := pumpFound
	for i := 0; i < pumpDrainBatches && res == pumpFound; i++ {
		res = p.read(e)
	}
	if res == pumpLast {
		e.c.endCounted(e.s) // before drop: the Conn may be closing
	}
	if e.r.drainPending.Load() {
		e.r.mu.Lock()
		if !e.r.gone {
			e.s.countUnreported(e.r)
		}
		e.r.mu.Unlock()
	}
	p.drop(e)
}

// drop unmaps e's ring and forgets it.
func (p *ringPump) drop(e *pumpRing) {
	e.stop()
	e.r.mu.Lock()
	e.c.dropRingLocked(e.s, e.r)
	e.r.mu.Unlock()
	p.mu.Lock()
	for i, o := range p.rings {
		if o == e {
			p.rings = append(p.rings[:i:i], p.rings[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	e.c.wg.Done()
}
