package hub

import (
	"math/rand/v2"

	"switchboard/internal/protocol"
)

// noRespondersHeader is the header block of a "no responders" status reply.
var noRespondersHeader = []byte("NATS/1.0 503\r\n\r\n")

// route delivers one published message to every matching subscription: each
// plain subscriber, and one member of each queue group. It runs on the
// publisher's reader goroutine; deliveries are flushed when the read ends.
func (c *client) route(subj, reply []byte, hdrLen int, payload []byte) {
	r := c.h.subs.Match(subj)
	n := 0
	for _, s := range r.Plain {
		if c.deliver(s, subj, reply, hdrLen, payload) {
			n++
		}
	}
	for _, g := range r.Groups {
		if len(g) == 0 {
			continue
		}
		// Start at a random member; skip members that cannot take it.
		start := rand.IntN(len(g))
		for i := range g {
			if c.deliver(g[(start+i)%len(g)], subj, reply, hdrLen, payload) {
				n++
				break
			}
		}
	}
	if n == 0 && reply != nil && c.opts.NoResponders && c.opts.Headers && !c.queueBound(subj) {
		c.noResponders(reply)
	}
}

// deliver queues the message for s. It reports false when s did not take
// it: the publisher's own subscription without echo, a closing connection,
// or an exhausted auto-unsubscribe.
func (c *client) deliver(s *subscription, subj, reply []byte, hdrLen int, payload []byte) bool {
	d := s.c
	if d == c.origin && !c.echo {
		return false
	}
	if c.fwd != nil && c.fwd.skips(s, c.fwdSeq, c.fwdPeer) {
		return false // it reads this message from a ring
	}
	if s.filter && !c.deliverable(s, subj) {
		return false
	}
	// A restricted subscriber may answer what it receives (allow_responses).
	resp := reply != nil && d.respTTL > 0 && c.grantsResponse(d, reply)
	d.mu.Lock()
	// s may have been unsubscribed since Match found it: gone drops such
	// late deliveries, so a sid is never delivered after its UNSUB.
	if d.closing || s.gone || (s.max > 0 && s.delivered >= s.max) {
		d.mu.Unlock()
		return false
	}
	s.delivered++
	if resp {
		d.noteResponseLocked(reply)
	}
	last := s.max > 0 && s.delivered == s.max
	if hdrLen > 0 && !d.headers {
		d.out = protocol.AppendMsg(d.out, subj, s.sid, reply, payload[hdrLen:])
	} else if hdrLen > 0 {
		d.out = protocol.AppendHMsg(d.out, subj, s.sid, reply, hdrLen, payload)
	} else {
		d.out = protocol.AppendMsg(d.out, subj, s.sid, reply, payload)
	}
	if len(d.out) > d.h.cfg.MaxPending {
		d.slowLocked()
	}
	if last {
		s.gone = true
		if d.subs != nil {
			delete(d.subs, string(s.sid))
		}
	}
	d.mu.Unlock()
	if last {
		c.h.removeSub(s)
	}
	if c.shmOn && s.shm.Load() {
		c.shmOffer(s)
	}
	c.h.stats.outMsgs.Add(1)
	if d != c.lastDst {
		c.pcd[d] = struct{}{}
		c.lastDst = d
	}
	return true
}

// noResponders tells a requester at once that nobody is subscribed: a
// header-only message with status 503 on the reply subject, delivered to
// one of the requester's own subscriptions that match it, as nats-server
// does. It counts as a delivery (auto-unsubscribe, MaxPending).
func (c *client) noResponders(reply []byte) {
	r := c.h.subs.Match(reply)
	try := func(s *subscription) bool {
		return s.c == c.origin && c.deliver(s, reply, nil, len(noRespondersHeader), noRespondersHeader)
	}
	for _, s := range r.Plain {
		if try(s) {
			return
		}
	}
	for _, g := range r.Groups {
		for _, s := range g {
			if try(s) {
				return
			}
		}
	}
}
