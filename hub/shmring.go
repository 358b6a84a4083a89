package hub

// The life of a ring in the broker (shm.go): made ready, readers attached
// and detached, the forwarder's audience kept up to date, dropped.

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"switchboard/internal/protocol"
	"switchboard/internal/subject"
	"switchboard/shm"
)

// sealed: the publisher mapped ring id and sealed it; check, then attach
// the readers and start serving the rest.
func (b *broker) sealed(c *client, id uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rings[id]
	if r == nil || r.pub != c || r.ready {
		return
	}
	if ok, err := r.region.Sealed(); !ok {
		c.log.Warn("shm: the publisher did not seal its ring; dropped", "ring", id, "err", err)
		b.dropRingLocked(r)
		return
	}
	r.ready = true
	b.updateReadyLocked(r.pub)
	// Nobody has read the ring yet: its first readers and the forwarder
	// start at sequence 0, so what the publisher wrote before this
	// message was handled reaches them too.
	// The first readers' cursors go to the publisher one per "reader"
	// message (a control message carries at most two descriptors), all
	// ahead of "ready".
	for s := range b.subs[r.pattern] {
		if eligible(s) && (s.c != c || c.echo) {
			if rr := b.attachLocked(r, s, nil, 0, false); rr != nil {
				c.sendCtl(b.peers[c].ctl, protocol.ShmControl{Op: "reader", Ring: r.id, Reader: rr.id, Block: rr.block}, []int{rr.cur.Fd()})
			}
		}
	}
	b.scanInterestLocked(r)
	// From here on a forwarder starts at the ring's end: sequence 0 was
	// only right while nothing had been written.
	r.forwarded = true
	if r.fwdStop == nil {
		r.rd.AttachCursor(nil) // no forwarder: do not hold the publisher back
	}
	// The publisher writes nothing into the ring before this: its first
	// readers are tracked from the first message on.
	if !c.sendCtl(b.peers[c].ctl, protocol.ShmControl{Op: "ready", Ring: r.id}, nil) {
		b.dropRingLocked(r)
	}
}

// attachLocked makes s a reader of r, with the cursor of rr (nil: a new
// one), and returns it. A late reader (late set: r is in use, and its
// publisher tracks rr already) starts where the forwarder or the ring has
// got to; otherwise it starts at start and the caller tells the publisher.
func (b *broker) attachLocked(r *ring, s *subscription, rr *ringReader, start uint64, late bool) *ringReader {
	if r.readers[s] != nil {
		return nil
	}
	p, rp := b.peers[s.c], b.peers[r.pub]
	if p == nil || rp == nil {
		return nil
	}
	if rr == nil {
		b.id++
		cur, err := shm.CreateCursor(fmt.Sprintf("sb-cur-%d-%d", r.id, b.id))
		if err != nil {
			s.c.log.Warn("shm: cannot create a cursor", "err", err)
			return nil
		}
		rr = &ringReader{id: b.id, cur: cur, block: s.block}
	}
	cur := rr.cur
	// Forwarders skip s from here on, on every ring of this publisher:
	// the publisher writes each message into every ring that matches.
	skip := map[*subscription]map[uint64]uint64{}
	if old := rp.skip.Load(); old != nil {
		for k, v := range *old {
			skip[k] = v
		}
	}
	// Where s starts on each of the publisher's rings: where the ring's
	// forwarder has got to, if one runs (everything before it was
	// forwarded to s over the socket, ahead of the attach below, and
	// nothing after will be), else the ring's end. Held until the attach
	// is queued.
	rings := make([]*ring, 0, len(rp.rings))
	for _, o := range rp.rings {
		rings = append(rings, o)
	}
	slices.SortFunc(rings, func(a, b *ring) int { return cmp.Compare(a.id, b.id) })
	from := make(map[uint64]uint64, len(rings))
	for _, o := range rings {
		o.fwdMu.Lock()
		defer o.fwdMu.Unlock()
		from[o.id] = o.region.Stats().WriteSeq
		if o.fwdOn {
			from[o.id] = o.fwdNext
		}
	}
	if late {
		start = from[r.id]
	}
	from[r.id] = start
	// Until the subscriber maps the cursor and takes over, it holds the
	// reader's place at start: a blocking reader is waited for from its
	// first message on. (A throwaway reader writes the position.)
	if tmp, err := r.region.NewReader(); err == nil {
		tmp.Seek(start)
		tmp.AttachCursor(cur)
	}
	skip[s] = from
	rp.skip.Store(&skip)
	r.readers[s] = rr
	if !s.c.sendCtl(p.ctl, protocol.ShmControl{Op: "attach", Ring: r.id, Pattern: r.pattern, Sid: string(s.sid), Reader: rr.id, Start: start, Block: s.block}, []int{r.region.Fd(), cur.Fd()}) {
		b.detachLocked(r, s)
		return nil
	}
	for _, o := range rp.rings {
		b.loseInterestLocked(o, s)
	}
	return rr
}

// detachLocked ends s's reading of r.
func (b *broker) detachLocked(r *ring, s *subscription) {
	if rr := b.unlinkLocked(r, s); rr != nil {
		b.releaseLocked(r, rr)
	}
}

// unlinkLocked takes s out of r's readers (attached, pending or leaving)
// and out of what r's publisher's forwarders skip, and returns its
// reader; the publisher still tracks the reader's cursor.
func (b *broker) unlinkLocked(r *ring, s *subscription) *ringReader {
	rr := r.readers[s]
	delete(r.readers, s)
	if rr == nil {
		rr = r.pending[s]
		delete(r.pending, s)
	}
	if rr == nil {
		rr = r.leaving[s]
		delete(r.leaving, s)
	}
	if rr == nil {
		return nil
	}
	rp := b.peers[r.pub]
	if rp == nil {
		return rr
	}
	still := false
	for _, o := range rp.rings {
		if o.readers[s] != nil {
			still = true
		}
	}
	if !still {
		skip := map[*subscription]map[uint64]uint64{}
		for k, v := range *rp.skip.Load() {
			if k != s {
				skip[k] = v
			}
		}
		rp.skip.Store(&skip)
	}
	return rr
}

// releaseLocked closes the hub's mapping of rr's cursor and tells r's
// publisher to stop tracking it.
func (b *broker) releaseLocked(r *ring, rr *ringReader) {
	rr.cur.Close()
	if rp := b.peers[r.pub]; rp != nil {
		r.pub.sendCtl(rp.ctl, protocol.ShmControl{Op: "unreader", Ring: r.id, Reader: rr.id}, nil)
	}
}

// detached: c emptied and unmapped ring id, which its subscription sid
// read until it ended; the publisher may stop tracking that cursor now.
func (b *broker) detached(c *client, id uint64, sid string, reader uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rings[id]
	if r == nil {
		return
	}
	for s, rr := range r.leaving {
		// A client that reuses sids can have two ended readers of one
		// sid: the reader id tells them apart (0 from older clients).
		if s.c == c && string(s.sid) == sid && (reader == 0 || rr.id == reader) {
			delete(r.leaving, s)
			b.releaseLocked(r, rr)
			return
		}
	}
}

// dropRingLocked closes r: readers see it closed once they have read what
// it holds; the forwarder stops.
func (b *broker) dropRingLocked(r *ring) {
	delete(b.rings, r.id)
	if p := b.peers[r.pub]; p != nil && p.rings[r.pattern] == r {
		delete(p.rings, r.pattern)
		b.updateReadyLocked(r.pub)
	}
	for s := range r.readers {
		b.detachLocked(r, s)
	}
	for s := range r.pending {
		b.detachLocked(r, s)
	}
	for s := range r.leaving {
		b.detachLocked(r, s)
	}
	b.stopForwarderLocked(r)
	r.region.CloseRing()
	release := func() {
		r.region.Close()
		r.hubCur.Close()
	}
	if done := r.fwdDone; done != nil {
		// The forwarder may still be reading the mapping.
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			<-done
			release()
		}()
		return
	}
	release()
}

// subAdded: s was subscribed; forwarders whose rings it overlaps serve it.
func (b *broker) subAdded(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.rings {
		if r.ready && subject.Overlap(r.pattern, s.subject) && !b.readsFromLocked(r.pub, s) {
			r.interest[s] = struct{}{}
			b.startForwarderLocked(r)
		}
	}
}

// subRemoved: s is gone (UNSUB, auto-unsubscribe, connection closed).
func (b *broker) subRemoved(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if set := b.subs[s.subject]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(b.subs, s.subject)
		}
	}
	// A subscriber whose connection lives on (UNSUB, Drain) may still be
	// emptying the ring into its queue: its publisher keeps waiting for
	// its cursor until it says DETACHED. Telling the publisher at once
	// let it overwrite what the subscriber had not read yet. (clientGone
	// removes a closing connection's peer before its subscriptions go.)
	//
	// A cursor that reads NoPosition was unmapped by its subscriber
	// already (the hub stores a start position in every cursor it hands
	// out): nothing to wait for. A reader left waiting longer than the
	// block timeout (a client that never says DETACHED) is released
	// at the next subscription that ends, so they cannot pile up.
	alive := b.peers[s.c] != nil
	now := time.Now()
	for _, r := range b.rings {
		if rr := r.readers[s]; rr != nil && alive && rr.cur.Position() != shm.NoPosition {
			b.unlinkLocked(r, s)
			if r.leaving == nil {
				r.leaving = make(map[*subscription]*ringReader)
			}
			rr.ended = now
			r.leaving[s] = rr
		} else {
			b.detachLocked(r, s)
		}
		b.loseInterestLocked(r, s)
		for o, rr := range r.leaving {
			if now.Sub(rr.ended) > shm.DefaultBlockTimeout {
				b.detachLocked(r, o)
			}
		}
	}
}

// clientGone drops c's rings and control state.
func (b *broker) clientGone(c *client) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[c]
	if p == nil {
		return
	}
	for _, r := range p.rings {
		b.dropRingLocked(r)
	}
	delete(b.peers, c)
	for _, r := range b.rings {
		for s := range r.leaving {
			if s.c == c {
				b.detachLocked(r, s)
			}
		}
	}
}

// readsFromLocked reports whether s reads one of pub's rings.
func (b *broker) readsFromLocked(pub *client, s *subscription) bool {
	_, ok := b.peers[pub].readerOf(s)
	return ok
}

// readerOf reports whether s reads one of p's rings (p may be nil), and
// where it started on each.
func (p *shmPeer) readerOf(s *subscription) (map[uint64]uint64, bool) {
	if p == nil {
		return nil, false
	}
	sk := p.skip.Load()
	if sk == nil {
		return nil, false
	}
	from, ok := (*sk)[s]
	return from, ok
}

func (b *broker) loseInterestLocked(r *ring, s *subscription) {
	if _, ok := r.interest[s]; !ok {
		return
	}
	delete(r.interest, s)
	if len(r.interest) == 0 {
		b.stopForwarderLocked(r)
	}
}

// scanInterestLocked finds every subscription r's forwarder must serve.
func (b *broker) scanInterestLocked(r *ring) {
	b.h.mu.Lock()
	clients := make([]*client, 0, len(b.h.clients))
	for _, c := range b.h.clients {
		clients = append(clients, c)
	}
	b.h.mu.Unlock()
	for _, c := range clients {
		c.mu.Lock()
		for _, s := range c.subs {
			if subject.Overlap(r.pattern, s.subject) && !b.readsFromLocked(r.pub, s) {
				r.interest[s] = struct{}{}
			}
		}
		c.mu.Unlock()
	}
	if len(r.interest) > 0 {
		b.startForwarderLocked(r)
	}
}

// updateReadyLocked refreshes the list of p's ready rings, by id, that
// forwarders consult.
func (b *broker) updateReadyLocked(pub *client) {
	p := b.peers[pub]
	if p == nil {
		return
	}
	var rs []*ring
	for _, r := range p.rings {
		if r.ready {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b *ring) int { return cmp.Compare(a.id, b.id) })
	p.ready.Store(&rs)
}
