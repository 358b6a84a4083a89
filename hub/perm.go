package hub

import (
	"bytes"
	"strconv"
	"sync"
	"time"

	"switchboard/auth"
)

// maxResponses bounds the reply subjects one connection may answer
// without publish permission at one time (see allowResponse).
const maxResponses = 4096

// Audit log budget per connection: a peer that keeps sending denied
// operations is logged auditBurst times, then once a second with the
// count of what was left out.
const auditBurst = 20

// mayPublish reports whether the connection may publish to subj with
// reply subject reply (nil for none). It runs on the reader goroutine,
// only for restricted connections. The last allowed subject is
// remembered, so a stream to one subject is checked once.
func (c *client) mayPublish(subj, reply []byte) bool {
	if reply != nil && isReserved(reply) && !c.grant.PublishUncached(string(reply)).Allowed {
		// A reply into $SB. would make a hub service (or a responder with
		// allow_responses) publish there on this client's behalf.
		c.deny("publish", reply, auth.Decision{})
		c.softErr("Permissions Violation for Publish with Reply of " + strconv.Quote(string(reply)))
		return false
	}
	if c.lastPubOK && bytes.Equal(subj, c.lastPub) {
		return true
	}
	d := c.grant.Publish(string(subj))
	if d.Allowed {
		c.lastPub = append(c.lastPub[:0], subj...)
		c.lastPubOK = true
		return true
	}
	if c.respTTL > 0 && c.useResponse(subj) {
		return true
	}
	c.deny("publish", subj, d)
	c.softErr("Permissions Violation for Publish to " + strconv.Quote(string(subj)))
	return false
}

// maySubscribe checks a SUB of a restricted connection; filter reports
// that the subscription also covers denied subjects, so each delivery on
// it must be checked (see deliverable).
func (c *client) maySubscribe(subj, queue []byte) (ok, filter bool) {
	d := c.grant.Subscribe(string(subj))
	if !d.Allowed {
		c.deny("subscribe", subj, d.Decision)
		msg := "Permissions Violation for Subscription to " + strconv.Quote(string(subj))
		if queue != nil {
			msg += " using queue " + strconv.Quote(string(queue))
		}
		c.softErr(msg)
		return false, false
	}
	return true, d.Filter
}

// isReserved reports whether subj is under the hub's reserved $SB. prefix.
func isReserved(subj []byte) bool {
	return bytes.HasPrefix(subj, []byte("$SB."))
}

// grantsResponse reports whether d, a restricted subscriber that is about
// to receive a request from c with reply subject reply, may answer it once
// even without publish permission on reply (allow_responses). It may not
// when nothing needs granting, when the answer would go where d is
// explicitly denied or into $SB., when c asks itself (or another
// connection of the same principal: a principal must not widen its own
// permissions), or when c could not even receive the answer: a requester
// may only name a reply subject it may subscribe to. It runs on c's
// reader goroutine; d's grant is fixed once d has subscribed.
func (c *client) grantsResponse(d *client, reply []byte) bool {
	if d == c.origin || d.grant == c.grant || (d.key != "" && d.key == c.key) || isReserved(reply) {
		return false
	}
	r := string(reply)
	if dec := d.grant.PublishUncached(r); dec.Allowed || dec.Rule != nil {
		return false // allowed anyway, or denied by a rule: deny wins
	}
	return !c.restricted || c.grant.Subscribe(r).Allowed
}

// deliverable reports whether a message on subj may be delivered on s,
// a subscription whose pattern also covers subjects its owner may not
// receive. It runs on c's reader goroutine (c publishes), which remembers
// the last answer: a stream to one subject is checked once per grant.
func (c *client) deliverable(s *subscription, subj []byte) bool {
	g := s.c.grant
	ok := c.filtOK
	if g != c.filtGrant || !bytes.Equal(subj, c.filtSubj) {
		ok = g.Deliver(string(subj))
		c.filtGrant, c.filtSubj, c.filtOK = g, append(c.filtSubj[:0], subj...), ok
	}
	if !ok {
		c.h.stats.filtered.Add(1)
	}
	return ok
}

// noteResponseLocked lets d answer a request it is about to receive (see
// grantsResponse): once, within the policy's response TTL. The table is
// bounded: when full, expired entries are swept (at most once a second)
// and, if it is still full, no more are added — the answer is then
// refused, and no requester can evict another's. Called with d.mu held.
func (d *client) noteResponseLocked(reply []byte) {
	if d.resp == nil {
		d.resp = make(map[string]time.Time)
	}
	now := time.Now()
	if len(d.resp) >= maxResponses {
		if now.Sub(d.respSwept) < time.Second {
			return
		}
		d.respSwept = now
		for k, exp := range d.resp {
			if now.After(exp) {
				delete(d.resp, k)
			}
		}
		if len(d.resp) >= maxResponses {
			return
		}
	}
	d.resp[string(reply)] = now.Add(d.respTTL)
}

// useResponse consumes a response permission for subj, if there is a live
// one.
func (c *client) useResponse(subj []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.resp[string(subj)]
	if !ok {
		return false
	}
	delete(c.resp, string(subj))
	return time.Now().Before(exp)
}

// deny counts and audits a refused operation. The log is rate limited per
// connection so that a hostile peer cannot flood it.
func (c *client) deny(op string, subj []byte, d auth.Decision) {
	c.h.stats.denied.Add(1)
	now := time.Now()
	if now.Sub(c.auditAt) >= time.Second {
		c.auditAt = now
		c.auditLeft = auditBurst
	}
	if c.auditLeft == 0 {
		c.auditDropped++
		return
	}
	c.auditLeft--
	attrs := []any{"cid", c.id, "who", c.who, "transport", c.who.Transport, "op", op, "subject", string(subj), "decision", d.String()}
	if d.Rule != nil {
		attrs = append(attrs, "rule", d.Rule.File+":"+strconv.Itoa(d.Rule.Location()))
	}
	if c.auditDropped > 0 {
		attrs = append(attrs, "suppressed", c.auditDropped)
		c.auditDropped = 0
	}
	c.h.audit.Warn("permission denied", attrs...)
}

// connAuditPerSecond bounds the audit lines about refused connections
// (failed logins and handshakes, auth timeouts, connection limits),
// hub-wide: a connect-and-fail loop must not flood the log. Each
// connection's denied operations have their own budget (see deny).
const connAuditPerSecond = 100

// auditLimiter is a hub-wide budget of audit lines per second.
type auditLimiter struct {
	mu      sync.Mutex
	start   time.Time
	left    int
	dropped int
}

// allow reports whether a line may be logged now, and how many were
// dropped since the last one that was.
func (a *auditLimiter) allow() (ok bool, dropped int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now := time.Now(); now.Sub(a.start) >= time.Second {
		a.start, a.left = now, connAuditPerSecond
	}
	if a.left == 0 {
		a.dropped++
		return false, 0
	}
	a.left--
	dropped, a.dropped = a.dropped, 0
	return true, dropped
}

// auditConn logs a refused connection within the hub-wide budget.
func (h *Hub) auditConn(msg string, attrs ...any) {
	ok, dropped := h.connAudit.allow()
	if !ok {
		return
	}
	if dropped > 0 {
		attrs = append(attrs, "suppressed", dropped)
	}
	h.audit.Warn(msg, attrs...)
}
