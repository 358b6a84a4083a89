package hub

import (
	"context"
	"errors"

	"switchboard/internal/subject"
	"switchboard/shm"
)

// The forwarder: while a ring's messages have subscribers that do not
// read the ring (socket and TCP subscribers, shm subscriptions of other
// patterns or not yet attached), a hub goroutine reads the ring like any
// reader and routes each message to them as if the publisher had sent it
// over its socket, skipping the attached readers.

// startForwarderLocked starts r's forwarder unless it runs. A forwarder
// starts at the ring's current end, or at from if the ring is new.
func (b *broker) startForwarderLocked(r *ring) {
	if r.fwdStop != nil || !r.ready {
		return
	}
	from := r.region.Stats().WriteSeq
	if !r.forwarded {
		from = 0 // the ring just became ready (sealed): rd holds sequence 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	prev := r.fwdDone
	done := make(chan struct{})
	r.fwdStop, r.fwdDone = cancel, done
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev // one reader on the hub's cursor at a time
		}
		b.forward(ctx, r, from)
	}()
}

// stopForwarderLocked asks r's forwarder to stop; it does not wait (the
// forwarder may be waiting for b.mu to offer a ring).
func (b *broker) stopForwarderLocked(r *ring) {
	if r.fwdStop != nil {
		r.fwdStop()
		r.fwdStop = nil
	}
}

// fwdFlushEvery is the most messages a forwarder routes between flushes.
const fwdFlushEvery = 256

// forward reads r from its current end and routes each message to the
// subscribers that do not read r.
func (b *broker) forward(ctx context.Context, r *ring, from uint64) {
	r.fwdMu.Lock()
	r.fwdOn, r.fwdNext = true, from
	r.fwdMu.Unlock()
	defer func() {
		r.fwdMu.Lock()
		r.fwdOn = false
		r.fwdMu.Unlock()
	}()
	rd := r.rd
	if rd.Cursor() == nil || rd.Pos() != from {
		rd.Seek(from)
		rd.AttachCursor(r.hubCur)
	}
	// Stopped (no one left to serve, or the ring dropped): stop holding
	// the publisher back.
	defer rd.AttachCursor(nil)
	fc := r.pub.forwarder(r, b.peerOf(r.pub))
	var body []byte
	var cache shm.FrameCache
	unflushed := 0
	for {
		// Flush what was routed only when the ring has nothing more (or
		// every fwdFlushEvery messages): a write per message and
		// destination made a ring slower than the socket for fan-out.
		// Ordering holds regardless: a subscription's messages and its
		// "attach" go through the same buffer.
		m, err := rd.TryNext()
		if errors.Is(err, shm.ErrEmpty) {
			if unflushed > 0 {
				fc.flushTouched()
				unflushed = 0
			}
			m, err = rd.Next(ctx)
		}
		if errors.Is(err, shm.ErrCorrupt) {
			continue
		}
		if err != nil {
			fc.flushTouched() // what was routed goes out now
			return            // ctx cancelled, or the ring closed
		}
		var f shm.Frame
		if m.Bare {
			// The data alone, on the ring's pattern (checked below).
			f = shm.Frame{Subject: r.pattern, Body: m.Data}
		} else {
			f, err = shm.ParseFrameCached(m.Data, &cache)
		}
		ok := err == nil && subject.ValidPublish([]byte(f.Subject)) && subject.Match(r.pattern, f.Subject) &&
			(f.Reply == "" || (subject.ValidPublish([]byte(f.Reply)) && !isReserved([]byte(f.Reply))))
		if ok {
			body = append(body[:0], f.Body...)
		}
		if !rd.Release() || !ok {
			b.h.stats.shmBad.Add(1)
			continue
		}
		if !fc.fwdPeer.firstReady(r, f.Subject) {
			continue // an older ring of this publisher forwards it
		}
		var reply []byte
		if f.Reply != "" {
			reply = []byte(f.Reply)
		}
		// Under fwdMu, so that a subscription attached meanwhile starts
		// exactly after the last message forwarded to it (attachLocked).
		r.fwdMu.Lock()
		fc.fwdSeq = m.Seq
		b.h.stats.inMsgs.Add(1)
		fc.route([]byte(f.Subject), reply, f.HdrLen, body)
		if unflushed++; unflushed >= fwdFlushEvery {
			fc.flushTouched()
			unflushed = 0
		}
		r.fwdNext = m.Seq + 1
		r.fwdMu.Unlock()
		for _, s := range fc.fwdOffers {
			b.offer(r.pub, s) // takes b.mu: never under fwdMu
		}
		fc.fwdOffers = fc.fwdOffers[:0]
	}
}

// forwarder returns a stand-in for c that routes r's messages: it has c's
// identity and options, and its own per-goroutine state.
func (c *client) forwarder(r *ring, p *shmPeer) *client {
	fc := &client{
		fwdPeer:    p,
		h:          c.h,
		id:         c.id,
		origin:     c,
		fwd:        r,
		log:        c.log,
		who:        c.who,
		grant:      c.grant,
		restricted: c.restricted,
		respTTL:    c.respTTL,
		key:        c.key,
		echo:       c.echo,
		shmOn:      c.shmOn,
		maxPayload: c.maxPayload,
		pcd:        make(map[*client]struct{}),
	}
	fc.opts.Headers = c.opts.Headers // not NoResponders: attached readers got it
	return fc
}

// skips reports whether the forwarder of r must not deliver the message at
// sequence seq to s, because s reads it from a ring.
func (r *ring) skips(s *subscription, seq uint64, p *shmPeer) bool {
	from, ok := p.readerOf(s)
	return ok && seq >= from[r.id]
}

// peerOf returns c's shm state, or nil.
func (b *broker) peerOf(c *client) *shmPeer {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peers[c]
}

// shmOffer asks the broker, once per pattern, to offer c a ring for s's
// pattern. It runs on c's reader goroutine (or a forwarder's).
func (c *client) shmOffer(s *subscription) {
	if _, seen := c.shmSeen[s.subject]; seen || len(c.shmSeen) >= shmMaxSeen {
		return
	}
	if c.shmSeen == nil {
		c.shmSeen = make(map[string]struct{})
	}
	c.shmSeen[s.subject] = struct{}{}
	if c.fwd != nil {
		c.fwdOffers = append(c.fwdOffers, s) // the forwarder holds fwdMu
		return
	}
	c.h.shm.offer(c.origin, s)
}

// firstReady reports whether r is the first of p's ready rings whose
// pattern matches subj.
func (p *shmPeer) firstReady(r *ring, subj string) bool {
	if p == nil {
		return true
	}
	rs := p.ready.Load()
	if rs == nil {
		return true
	}
	for _, o := range *rs {
		if o == r {
			return true
		}
		if subject.Match(o.pattern, subj) {
			return false
		}
	}
	return true
}
