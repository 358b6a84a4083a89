package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// pull is a waiting fetch.
type pull struct {
	c        *consumer
	to       string
	n        int   // messages still wanted
	deadline int64 // Unix nanoseconds
	noWait   bool
}

// maxPulls bounds the fetches waiting on one queue; the oldest is ended
// (408) to make room.
const maxPulls = 4096

// Fetch asks for up to batch messages for the pull consumer name, sent to
// the subject to as they become available, until expires has passed. With
// noWait, it ends as soon as nothing more is available. A fetch that ends
// short of batch ends with a status message to to: 404 "No Messages"
// (noWait) or 408 "Request Timeout".
func (q *Queue) Fetch(name, to string, batch int, expires time.Duration, noWait bool) error {
	if batch < 1 {
		batch = 1
	}
	if expires <= 0 {
		expires = 30 * time.Second
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.consumers[name]
	if c == nil {
		return fmt.Errorf("%w: %q on queue %s", ErrNoConsumer, name, q.name)
	}
	if c.cfg.DeliverSubject != "" {
		return fmt.Errorf("%w: %q delivers to %s", ErrPushConsumer, name, c.cfg.DeliverSubject)
	}
	if len(q.pulls) >= maxPulls {
		old := q.pulls[0]
		q.pulls = q.pulls[1:]
		q.replyLater(outMsg{to: old.to, code: 408, text: "Request Timeout"})
	}
	q.pulls = append(q.pulls, &pull{c: c, to: to, n: batch, deadline: time.Now().Add(expires).UnixNano(), noWait: noWait})
	q.kick()
	return nil
}

// AckKind is what a consumer says of a delivery.
type AckKind int

const (
	Ack        AckKind = iota // done: remove it (Work) or mark it done (Limits)
	Nak                       // deliver it again, after the delay if one is given
	Term                      // never deliver it again; to the dead-letter queue if there is one
	InProgress                // still working: restart the ack wait
)

// Ack applies a consumer's answer to delivery id of message seq. It fails
// with ErrStaleDelivery when that is not the message's current delivery
// (acked already, redelivered since, or purged). For Ack and Term, done
// (if not nil) is called once the record is durable.
func (q *Queue) Ack(ctx context.Context, name string, seq, id uint64, kind AckKind, delay time.Duration, done func(error)) error {
	q.mu.Lock()
	c := q.consumers[name]
	if c == nil {
		q.mu.Unlock()
		return fmt.Errorf("%w: %q on queue %s", ErrNoConsumer, name, q.name)
	}
	g := c.g
	d := g.pending[seq]
	if d == nil || d.id != id || d.c != c {
		// Acked already, redelivered since, purged, or delivered to
		// another consumer: a consumer answers only its own deliveries.
		q.mu.Unlock()
		return fmt.Errorf("%w: message %d, delivery %d to consumer %s", ErrStaleDelivery, seq, id, name)
	}
	if q.failed != nil && (kind == Ack || kind == Term) {
		err := q.failed
		q.mu.Unlock()
		return err
	}
	now := time.Now()
	var rec []byte
	var dead *deadJob
	switch kind {
	case Ack:
		rec = q.finish(g, seq, ackDone, true)
		q.compactTimersLocked()
	case Term:
		delete(g.pending, seq)
		d.c.inflight--
		dead = &deadJob{g: g, seq: seq, count: d.count, reason: "terminated by consumer " + name}
	case Nak:
		delete(g.pending, seq)
		d.c.inflight--
		switch {
		case q.cfg.MaxDeliver > 0 && int(d.count) >= q.cfg.MaxDeliver:
			dead = &deadJob{g: g, seq: seq, count: d.count, reason: maxDeliverReason(q.cfg.MaxDeliver)}
		case delay > 0:
			heap.Push(&g.later, laterItem{at: now.Add(delay).UnixNano(), seq: seq})
		default:
			g.redo = append(g.redo, seq)
		}
	case InProgress:
		// The heap keeps the old deadline; when it comes up, the loop
		// sees the later one and pushes that (one entry per delivery, so
		// a client repeating +WPI does not grow the heap).
		d.deadline = now.Add(q.ackWait(c)).UnixNano()
	}
	if dead != nil {
		q.deads = append(q.deads, dead)
	}
	q.mu.Unlock()
	q.kick()
	if rec == nil {
		// Nak and InProgress write nothing; a termination is recorded by
		// the loop once the dead letter is stored, so its confirmation
		// means "accepted", not "on disk" (docs/queues.md).
		if done != nil {
			done(nil)
		}
		return nil
	}
	_, err := q.j.Append(ctx, rec, func(_ uint64, err error) {
		if err != nil {
			err = q.storageErr(err)
		}
		if done != nil {
			done(err)
		}
	})
	if err != nil {
		return q.storageErr(err)
	}
	return nil
}

// maxPerStep bounds the messages one step of the loop hands out.
const maxPerStep = 1024

func maxDeliverReason(n int) string { return "max deliveries (" + strconv.Itoa(n) + ") reached" }

// compactTimersLocked rebuilds the deadline heap when most of its entries
// belong to deliveries answered since (they stay until their time).
func (q *Queue) compactTimersLocked() {
	if q.timers.Len() < 64 {
		return
	}
	live := 0
	for _, g := range q.groups {
		live += len(g.pending)
	}
	if q.timers.Len() < 4*live {
		return
	}
	kept := q.timers[:0]
	for _, dl := range q.timers {
		if d := dl.g.pending[dl.seq]; d != nil && d.id == dl.id {
			kept = append(kept, dl)
		}
	}
	clear(q.timers[len(kept):])
	q.timers = kept
	heap.Init(&q.timers)
}

// deadJob is a message on its way to the dead-letter queue.
type deadJob struct {
	g      *group
	seq    uint64
	count  uint32
	reason string
}

// loop is the queue's goroutine: it hands out messages, runs the ack-wait
// and delay timers, ends fetches, removes aged messages, moves dead
// letters and sends what publish callbacks queued.
func (q *Queue) loop() {
	defer close(q.done)
	snd := q.m.opts.NewSender()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var lastTrim time.Time
	for {
		select {
		case <-q.stop:
			return
		case <-q.kickCh:
		case <-t.C:
		}
		now := time.Now()
		q.mu.Lock()
		sends, recs, deads := q.stepLocked(now.UnixNano())
		wake := q.nextWakeLocked(now.UnixNano())
		q.mu.Unlock()
		q.outMu.Lock()
		out := q.out
		q.out = nil
		q.outMu.Unlock()
		for _, m := range out {
			if m.code != 0 {
				snd.Status(m.to, m.code, m.text)
			} else {
				snd.Reply(m.to, m.v)
			}
		}
		for i := range sends {
			s := &sends[i]
			if s.code != 0 {
				snd.Status(s.to, s.code, s.text)
			} else {
				snd.Deliver(s.to, &s.d)
			}
		}
		snd.Flush()
		for _, rec := range recs {
			q.appendRecord(rec, false)
		}
		for _, dj := range deads {
			q.deadLetter(dj)
		}
		if now.Sub(lastTrim) > time.Second {
			lastTrim = now
			q.trimJournal()
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(time.Duration(wake - now.UnixNano()))
	}
}

// send is one delivery or status the loop sends.
type send struct {
	to   string
	d    Delivery
	code int
	text string
}

// stepLocked runs the timers and hands out what it can.
func (q *Queue) stepLocked(now int64) (sends []send, recs [][]byte, deads []*deadJob) {
	// Ack waits that ran out.
	for q.timers.Len() > 0 && q.timers[0].at <= now {
		dl := heap.Pop(&q.timers).(deadline)
		d := dl.g.pending[dl.seq]
		if d == nil || d.id != dl.id {
			continue // answered, or delivered again since
		}
		if d.deadline > now {
			dl.at = d.deadline // moved by InProgress
			heap.Push(&q.timers, dl)
			continue
		}
		delete(dl.g.pending, dl.seq)
		d.c.inflight--
		if q.cfg.MaxDeliver > 0 && int(d.count) >= q.cfg.MaxDeliver {
			q.deads = append(q.deads, &deadJob{g: dl.g, seq: dl.seq, count: d.count, reason: maxDeliverReason(q.cfg.MaxDeliver)})
			continue
		}
		dl.g.redo = append(dl.g.redo, dl.seq)
	}
	q.compactTimersLocked()
	// Aged messages.
	if q.cfg.MaxAge > 0 {
		cut := now - int64(q.cfg.MaxAge)
		var floor uint64
		for q.head < len(q.entries) && (q.entries[q.head].gone || q.entries[q.head].at < cut) {
			floor = q.entries[q.head].seq + 1
			q.remove(q.head)
			q.head++
		}
		q.trimHead()
		if rec := q.floorLocked(floor); rec != nil {
			recs = append(recs, rec)
		}
	}
	q.expireDedup(now)
	// Fetches. A step hands out at most maxPerStep messages (each read
	// from the journal under mu, which the publish callbacks wait for);
	// the loop goes on at once if there is more.
	budget := maxPerStep
	kept := q.pulls[:0]
	for _, p := range q.pulls {
		for p.n > 0 && p.c.inflight < p.c.cfg.MaxInFlight && budget > 0 {
			s, ok := q.handOut(p.c, p.to, now, &recs)
			if !ok {
				break
			}
			if s != nil {
				sends = append(sends, *s)
				p.n--
				budget--
			}
		}
		switch {
		case p.n == 0:
		case budget == 0:
			kept = append(kept, p)
		case p.noWait:
			sends = append(sends, send{to: p.to, code: 404, text: "No Messages"})
		case p.deadline <= now:
			sends = append(sends, send{to: p.to, code: 408, text: "Request Timeout"})
		default:
			kept = append(kept, p)
		}
	}
	clear(q.pulls[len(kept):])
	q.pulls = kept
	// Push consumers.
	for _, c := range q.consumers {
		if c.cfg.DeliverSubject == "" {
			continue
		}
		for c.inflight < c.cfg.MaxInFlight && budget > 0 {
			s, ok := q.handOut(c, c.cfg.DeliverSubject, now, &recs)
			if !ok {
				break
			}
			if s != nil {
				sends = append(sends, *s)
				budget--
			}
		}
	}
	for _, dj := range q.deadDone {
		if rec := q.finish(dj.g, dj.seq, ackDead, true); rec != nil {
			recs = append(recs, rec)
		}
	}
	q.deadDone = q.deadDone[:0]
	deads, q.deads = q.deads, nil
	if budget == 0 {
		q.kick()
	}
	return sends, recs, deads
}

// handOut delivers c's group's next message to the subject to. ok=false:
// nothing to hand out; s=nil with ok: a message that could not be read
// was skipped (and logged).
func (q *Queue) handOut(c *consumer, to string, now int64, recs *[][]byte) (s *send, ok bool) {
	g := c.g
	seq, ok := q.take(g, now)
	if !ok {
		return nil, false
	}
	b, err := q.j.Read(seq, nil)
	var r record
	if err == nil {
		r, err = decodeRecord(b)
	}
	if err != nil || r.Type != recMsg {
		q.log.Error("queue: a stored message cannot be read; it is dropped", "seq", seq, "err", err)
		q.finish(g, seq, ackDead, false)
		*recs = append(*recs, appendAck(nil, ackDead, g.name, seq))
		return nil, true
	}
	count := g.counts[seq] + 1
	g.counts[seq] = count
	id := q.nextID
	q.nextID++
	d := &delivery{seq: seq, id: id, c: c, deadline: now + int64(q.ackWait(c)), count: count}
	g.pending[seq] = d
	c.inflight++
	heap.Push(&q.timers, deadline{at: d.deadline, seq: seq, id: id, g: g})
	if count > 1 {
		*recs = append(*recs, appendDelivered(nil, g.name, seq, count))
	}
	return &send{to: to, d: Delivery{
		Queue: q.name, Consumer: c.cfg.Name, Seq: seq, ID: id, Count: count,
		Subject: r.Msg.Subject, At: time.Unix(0, r.Msg.At), Header: r.Msg.Header, Data: r.Msg.Data,
	}}, true
}

// nextWakeLocked is when the loop must run next without a kick.
func (q *Queue) nextWakeLocked(now int64) int64 {
	wake := now + int64(time.Minute)
	if q.timers.Len() > 0 {
		wake = min(wake, q.timers[0].at)
	}
	for _, g := range q.groups {
		if g.later.Len() > 0 {
			wake = min(wake, g.later[0].at)
		}
	}
	for _, p := range q.pulls {
		wake = min(wake, p.deadline)
	}
	if q.cfg.MaxAge > 0 && q.head < len(q.entries) {
		wake = min(wake, q.entries[q.head].at+int64(q.cfg.MaxAge))
	}
	if len(q.delayed) > 0 {
		// Delayed messages a group has not reached yet are found by
		// take; a second is the most they wait past their time when
		// nothing else wakes the loop.
		wake = min(wake, now+int64(time.Second))
	}
	return max(wake, now+int64(time.Millisecond))
}

// trimJournal deletes the journal segments that hold only removed
// messages (and the records about them).
func (q *Queue) trimJournal() {
	q.mu.Lock()
	first := q.firstLive()
	// Keep the records of Msg-Ids still in the dedup window: replay
	// rebuilds the window from them, so a retry after a restart is still
	// recognised. The oldest id comes first in the FIFO (ids are admitted
	// in about sequence order); one still being stored holds the trim.
	q.expireDedup(time.Now().UnixNano())
	if len(q.dedupFIFO) > 0 {
		if d := q.dedup[q.dedupFIFO[0]]; d != nil {
			if !d.durable {
				q.mu.Unlock()
				return
			}
			first = min(first, d.seq)
		}
	}
	ask := first > q.removedTo
	if ask {
		q.removedTo = first
	}
	q.mu.Unlock()
	if ask {
		if err := q.j.RemoveBefore(first); err != nil {
			q.storageErr(err)
		}
	}
}

// deadLetter moves a message to the dead-letter queue (or drops it, with
// a log line, when the queue has none) and then records it finished.
func (q *Queue) deadLetter(dj *deadJob) {
	q.mu.Lock()
	dlq := q.cfg.DeadLetter
	q.mu.Unlock()
	finish := func() {
		// Possibly on the dead-letter queue's committer, which must not
		// wait on this journal: the loop writes the record.
		q.mu.Lock()
		q.deadDone = append(q.deadDone, dj)
		q.mu.Unlock()
		q.kick()
	}
	b, err := q.j.Read(dj.seq, nil)
	var r record
	if err == nil {
		r, err = decodeRecord(b)
	}
	if err != nil || r.Type != recMsg {
		q.log.Error("queue: a dead letter cannot be read; it is dropped", "seq", dj.seq, "reason", dj.reason, "err", err)
		finish()
		return
	}
	target := q.m.Get(dlq)
	if dlq == "" || target == nil {
		q.log.Warn("queue: message dropped: no dead-letter queue", "seq", dj.seq, "subject", r.Msg.Subject,
			"deliveries", dj.count, "reason", dj.reason, "dead_letter", dlq)
		finish()
		return
	}
	hdr := r.Msg.Header
	hdr = appendHeader(hdr, "Sb-Dead-Reason", dj.reason)
	hdr = appendHeader(hdr, "Sb-Dead-Queue", q.name)
	hdr = appendHeader(hdr, "Sb-Dead-Seq", strconv.FormatUint(dj.seq, 10))
	hdr = appendHeader(hdr, "Sb-Dead-Deliveries", strconv.FormatUint(uint64(dj.count), 10))
	target.Publish(context.Background(), r.Msg.Subject, hdr, r.Msg.Data, "", time.Time{}, func(_ PubAck, err error) {
		if errors.Is(err, ErrTooLarge) {
			// It will never fit (the dead-letter fields made it too
			// large): drop it, as without a dead-letter queue.
			q.log.Warn("queue: message dropped: too large for the dead-letter queue", "seq", dj.seq, "subject", r.Msg.Subject,
				"deliveries", dj.count, "reason", dj.reason, "dead_letter", dlq, "err", err)
			finish()
			return
		}
		if err != nil {
			// Keep it here: deliver it again later rather than lose it.
			q.log.Error("queue: dead-letter queue refused a message; it stays", "seq", dj.seq, "dead_letter", dlq, "err", err)
			q.mu.Lock()
			heap.Push(&dj.g.later, laterItem{at: time.Now().Add(time.Duration(q.cfg.AckWait)).UnixNano(), seq: dj.seq})
			q.mu.Unlock()
			q.kick()
			return
		}
		finish()
	})
}

// appendHeader adds "k: v" to a NATS header block, making one if hdr is
// empty. The result is a new slice.
func appendHeader(hdr []byte, k, v string) []byte {
	const start = "NATS/1.0\r\n"
	var out []byte
	if len(hdr) < len(start)+2 {
		out = append(out, start...)
	} else {
		out = append(out, hdr[:len(hdr)-2]...) // without the final blank line
	}
	out = append(out, k...)
	out = append(out, ": "...)
	out = append(out, v...)
	return append(out, "\r\n\r\n"...)
}
