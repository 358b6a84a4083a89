package queue

import (
	"container/heap"
	"sort"
	"time"
)

// consumer is a named consumer of a queue.
type consumer struct {
	cfg      ConsumerConfig
	g        *group
	inflight int // its deliveries not yet acknowledged
}

// ackWait is how long a delivery to c may stay unacknowledged.
func (q *Queue) ackWait(c *consumer) time.Duration {
	if c.cfg.AckWait > 0 {
		return time.Duration(c.cfg.AckWait)
	}
	return time.Duration(q.cfg.AckWait)
}

// group is a position in the queue with its deliveries and acks: one
// shared by every consumer of a Work queue (a message goes to one of
// them), one per consumer of a Limits queue.
type group struct {
	name    string // "" for a Work queue's group, else the consumer's name
	next    uint64 // the lowest sequence never handed out
	pending map[uint64]*delivery
	redo    []uint64          // to deliver again, in order
	later   laterHeap         // naks with a delay and delayed messages
	counts  map[uint64]uint32 // deliveries so far of unfinished messages
	acked   map[uint64]bool   // Limits: finished messages at or past floor
	floor   uint64            // Limits: every message below is finished
}

func newGroup(name string, next uint64) *group {
	return &group{name: name, next: next, floor: next, pending: map[uint64]*delivery{},
		counts: map[uint64]uint32{}, acked: map[uint64]bool{}}
}

// reset empties g after a purge; next is the next sequence to come.
func (g *group) reset(next uint64) {
	g.next, g.floor = next, next
	clear(g.pending)
	clear(g.counts)
	clear(g.acked)
	g.redo, g.later = nil, nil
}

// dropBelow forgets what g knows of messages below seq (removed by a
// floor). Deliveries of them in flight are forgotten: their acks fail.
func (g *group) dropBelow(seq uint64) {
	for s, d := range g.pending {
		if s < seq {
			d.c.inflight--
			delete(g.pending, s)
		}
	}
	for s := range g.counts {
		if s < seq {
			delete(g.counts, s)
		}
	}
	for s := range g.acked {
		if s < seq {
			delete(g.acked, s)
		}
	}
	g.next, g.floor = max(g.next, seq), max(g.floor, seq)
}

// finished reports whether g is done with seq (Limits groups; a Work
// group's messages are removed from the queue instead).
func (g *group) finished(seq uint64) bool {
	return g.name != "" && (seq < g.floor || g.acked[seq])
}

// delivery is a message handed to a consumer and not yet acknowledged.
type delivery struct {
	seq, id  uint64
	c        *consumer
	deadline int64 // Unix nanoseconds
	count    uint32
}

// groupFor returns the group records name, or nil for a consumer that no
// longer exists.
func (q *Queue) groupFor(name string) *group {
	if q.cfg.Retention == Work {
		return q.groups[""]
	}
	return q.groups[name]
}

// setConsumersLocked makes the consumers match list (plus the default
// pull consumer). A removed consumer's deliveries go back to its group
// (Work) or are forgotten with its group (Limits).
//
// With record, a Limits group created here is recorded (recGroup), so that
// after a restart the acks of an earlier consumer of the same name do not
// count for the new one. It is false while the queue opens (the groups of
// the configured consumers are being rebuilt, not created).
func (q *Queue) setConsumersLocked(list []ConsumerConfig, record bool) {
	want := map[string]ConsumerConfig{DefaultConsumer: {Name: DefaultConsumer, MaxInFlight: DefaultMaxInFlight}}
	for _, cc := range list {
		want[cc.Name] = cc
	}
	next := q.firstLive()
	for name, c := range q.consumers {
		if _, ok := want[name]; ok {
			continue
		}
		for seq, d := range c.g.pending {
			if d.c == c {
				delete(c.g.pending, seq)
				c.g.redo = append(c.g.redo, seq)
			}
		}
		delete(q.consumers, name)
		if q.cfg.Retention == Limits {
			delete(q.groups, name)
		}
	}
	for name, cc := range want {
		gname := ""
		if q.cfg.Retention == Limits {
			gname = name
		}
		g := q.groups[gname]
		if g == nil {
			g = newGroup(gname, next)
			q.groups[gname] = g
			if record && gname != "" {
				q.appendRecord(appendGroup(nil, gname), true)
			}
		}
		if c := q.consumers[name]; c != nil {
			c.cfg, c.g = cc, g
		} else {
			q.consumers[name] = &consumer{cfg: cc, g: g}
		}
	}
	if len(q.pulls) > 0 {
		kept := q.pulls[:0]
		for _, p := range q.pulls {
			if q.consumers[p.c.cfg.Name] == p.c {
				kept = append(kept, p)
			} else {
				q.replyLater(outMsg{to: p.to, code: 409, text: "Consumer Deleted"})
			}
		}
		q.pulls = kept
	}
}

// finish ends seq for g: removed from a Work queue, marked done in a
// Limits group. With write, it also appends the ack record (returned, for
// the caller to append once it let go of mu).
func (q *Queue) finish(g *group, seq uint64, kind byte, write bool) []byte {
	if g == nil {
		return nil
	}
	if d := g.pending[seq]; d != nil {
		d.c.inflight--
		delete(g.pending, seq)
	}
	delete(g.counts, seq)
	if g.name == "" {
		if i := q.find(seq); i >= 0 {
			q.remove(i)
			q.trimHead()
		}
	} else if seq >= g.floor {
		g.acked[seq] = true
		q.advanceFloor(g)
	}
	if !write {
		return nil
	}
	return appendAck(nil, kind, g.name, seq)
}

// advanceFloor moves a Limits group's floor past the messages it finished,
// so that acked holds only those acknowledged out of order.
func (q *Queue) advanceFloor(g *group) {
	// The floor may sit on a sequence that is not a message (the
	// journal's indexes count ack records too): start at the first
	// message at or past it.
	e := q.entries[q.head:]
	i := sort.Search(len(e), func(i int) bool { return e[i].seq >= g.floor })
	for ; i < len(e); i++ {
		s := e[i].seq
		if e[i].gone {
			delete(g.acked, s)
			continue
		}
		if !g.acked[s] {
			g.floor = s
			return
		}
		delete(g.acked, s)
	}
	g.floor = q.applied + 1
}

// laterItem is a message to hand out again (or for the first time) at a
// given time.
type laterItem struct {
	at  int64
	seq uint64
}

type laterHeap []laterItem

func (h laterHeap) Len() int           { return len(h) }
func (h laterHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h laterHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *laterHeap) Push(x any)        { *h = append(*h, x.(laterItem)) }
func (h *laterHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// deadline is an ack wait running out; stale ones (the delivery was acked,
// or its deadline moved) are skipped when they come up.
type deadline struct {
	at      int64
	seq, id uint64
	g       *group
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// take returns the next message g should hand out at now, or ok=false.
func (q *Queue) take(g *group, now int64) (seq uint64, ok bool) {
	for g.later.Len() > 0 && g.later[0].at <= now {
		it := heap.Pop(&g.later).(laterItem)
		g.redo = append(g.redo, it.seq)
	}
	for len(g.redo) > 0 {
		seq := g.redo[0]
		g.redo = g.redo[1:]
		if q.live(seq) && !g.finished(seq) && g.pending[seq] == nil {
			delete(q.delayed, seq)
			return seq, true
		}
	}
	e := q.entries[q.head:]
	i := sort.Search(len(e), func(i int) bool { return e[i].seq >= g.next })
	for ; i < len(e); i++ {
		s := e[i].seq
		g.next = s + 1
		if e[i].gone || g.finished(s) || g.pending[s] != nil {
			continue
		}
		if nb, ok := q.delayed[s]; ok && nb > now {
			heap.Push(&g.later, laterItem{at: nb, seq: s})
			continue
		}
		delete(q.delayed, s) // its time has come (for this group)
		return s, true
	}
	return 0, false
}
