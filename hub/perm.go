package hub

import (
	"bytes"
	"strconv"
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

// mayPublish reports whether the connection may publish to subj. It runs on
// the reader goroutine, only for restricted connections. The last allowed
// subject is remembered, so a stream to one subject is checked once.
func (c *client) mayPublish(subj []byte) bool {
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
	c.softErr(`Permissions Violation for Publish to "` + string(subj) + `"`)
	return false
}

// maySubscribe checks a SUB of a restricted connection; filter reports
// that the subscription also covers denied subjects, so each delivery on
// it must be checked (see deliverable).
func (c *client) maySubscribe(subj []byte) (ok, filter bool) {
	d := c.grant.Subscribe(string(subj))
	if !d.Allowed {
		c.deny("subscribe", subj, d.Decision)
		c.softErr(`Permissions Violation for Subscription to "` + string(subj) + `"`)
		return false, false
	}
	return true, d.Filter
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

// noteResponse lets d answer a request it is about to receive even if it
// may not publish to the reply subject: once, within the policy's
// response TTL, as NATS's allow_responses. Called with d.mu held.
func (d *client) noteResponseLocked(reply []byte) {
	if d.resp == nil {
		d.resp = make(map[string]time.Time)
	}
	now := time.Now()
	if len(d.resp) >= maxResponses {
		for k, exp := range d.resp {
			if now.After(exp) {
				delete(d.resp, k)
			}
		}
		if len(d.resp) >= maxResponses {
			// Still full of live entries: forget an arbitrary one.
			for k := range d.resp {
				delete(d.resp, k)
				break
			}
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
