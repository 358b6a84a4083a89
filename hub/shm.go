package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/internal/protocol"
	"switchboard/internal/subject"
	"switchboard/shm"
)

// The shared-memory broker (see docs/shm.md, "The hub's broker").
//
// A client on the unix socket turns shared memory on with a $SB.SHM.HELLO
// request naming a sid it reserved; the hub sends every control message to
// that sid (MSG $SB.SHM.CTL), with ring and cursor memfds attached by
// SCM_RIGHTS. A subscription marked with $SB.SHM.SUB is an shm
// subscription. When a publisher that said HELLO publishes, over the
// socket, a message delivered to an shm subscription, the hub offers it a
// ring for that subscription's pattern (op "ring"); the publisher maps it
// writable, seals it and says $SB.SHM.SEALED; the hub attaches the
// pattern's shm subscriptions (op "attach"), each with its own cursor block,
// and hands the publisher their cursors (op "ready"), which it maps
// read-only. From then on it writes every message matching the pattern
// into the ring. Later subscriptions join through "reader" and TRACKING
// (trackLocked). Subscribers that are not
// attached readers (socket, TCP, other patterns) get the ring's messages
// from a forwarder goroutine in the hub, which runs only while such
// subscribers exist.

const (
	shmPrefix = "$SB.SHM."
	// shmFrameBudget is what a ring slot holds beyond the publisher's
	// max_payload: the frame header, subject and reply subject.
	shmFrameBudget = 1024
	// shmDefaultSlots is the slot count of offered rings.
	shmDefaultSlots = 64
	// shmMaxRings bounds the rings one connection publishes into.
	shmMaxRings = 64
	// shmMaxSeen bounds the patterns a publisher remembers deciding on.
	shmMaxSeen = 1024
	// shmMaxRingBytes bounds one ring's size.
	shmMaxRingBytes = 1 << 30
)

// shmRequest is the JSON body of a $SB.SHM.* request.
type shmRequest struct {
	Sid      string `json:"sid,omitempty"`       // SUB, DETACHED: the subscription
	Block    bool   `json:"block,omitempty"`     // SUB: block the publisher rather than drop
	Ring     uint64 `json:"ring,omitempty"`      // SEALED, TRACKING, DETACHED
	Reader   uint64 `json:"reader,omitempty"`    // TRACKING, DETACHED
	Subject  string `json:"subject,omitempty"`   // PUB
	Slots    int    `json:"slots,omitempty"`     // PUB
	SlotSize int    `json:"slot_size,omitempty"` // PUB
}

// broker owns every ring. Lock order: broker.mu before client.mu.
type broker struct {
	h  *Hub
	mu sync.Mutex
	id uint64
	// rings by id; peers by connection (those that said HELLO); shm
	// subscriptions by pattern.
	rings map[uint64]*ring
	peers map[*client]*shmPeer
	subs  map[string]map[*subscription]struct{}
	wg    sync.WaitGroup // forwarders
}

// shmPeer is a connection that said HELLO.
type shmPeer struct {
	ctl   string // the sid its control messages go to
	rings map[string]*ring
	// skip: for each attached reader of one of this publisher's rings,
	// the write sequence of each of its rings when the reader attached;
	// forwarders skip them from there on. Copy-on-write.
	skip atomic.Pointer[map[*subscription]map[uint64]uint64]
	// ready: its ready rings by id. A message that matches several of
	// them is forwarded by the first one's forwarder only.
	ready atomic.Pointer[[]*ring]
}

// ring is one publisher's ring for one pattern.
type ring struct {
	id      uint64
	pattern string
	pub     *client
	region  *shm.Region // the hub's read-write mapping
	hubCur  *shm.Cursor // the forwarder's cursor
	// rd is the forwarder's reader. Until the ring is ready it holds the
	// hub's cursor at sequence 0, so the publisher (which waits for
	// blocking readers) cannot run a ring ahead of the forwarder; with
	// no forwarder running it is detached (the cursor then reads as
	// caught up). Used by one goroutine at a time: the forwarder while
	// it runs, else whoever holds the broker's lock.
	rd       *shm.Reader
	ready    bool
	explicit bool
	created  time.Time
	readers  map[*subscription]*ringReader
	pending  map[*subscription]*ringReader // given to the publisher, not attached yet (trackLocked)
	// leaving: readers whose subscription ended (UNSUB) while their
	// connection lives on. The publisher keeps honouring their cursors
	// until the subscriber has emptied and unmapped the ring and says
	// DETACHED, or its connection ends (see subRemoved).
	leaving   map[*subscription]*ringReader
	interest  map[*subscription]struct{} // subscribers the forwarder serves
	fwdStop   context.CancelFunc
	fwdDone   chan struct{}
	forwarded bool // a forwarder ran: a new one starts at the current end
	revoked   bool // a durable queue now stores what it carries: the publisher was told to close it
	// fwdMu is held by the forwarder while it routes one message, and by
	// attachLocked while it picks where a new reader starts; fwdOn and
	// fwdNext (the next sequence it forwards) are guarded by it. Lock
	// order: broker.mu, then fwdMu (by ring id), then client.mu.
	fwdMu   sync.Mutex
	fwdOn   bool
	fwdNext uint64
}

type ringReader struct {
	id    uint64
	cur   *shm.Cursor
	block bool
	ended time.Time // when it moved to its ring's leaving set
}

func newBroker(h *Hub) *broker {
	return &broker{
		h:     h,
		rings: make(map[uint64]*ring),
		peers: make(map[*client]*shmPeer),
		subs:  make(map[string]map[*subscription]struct{}),
	}
}

// shmCapable reports whether c can take part: a unix socket connection
// without TLS, on a hub with shared memory on.
func (c *client) shmCapable() bool {
	_, unixConn := c.raw.(*net.UnixConn)
	return c.h.shm != nil && unixConn && c.tls == nil
}

// shmRequest handles a $SB.SHM.* request. It runs on c's reader goroutine.
func (c *client) shmRequest(verb string, reply, body []byte) {
	b := c.h.shm
	if !c.shmCapable() {
		if reply != nil {
			c.sendDirect(string(reply), protocol.ShmControl{Op: "error", Error: "shared memory needs a unix socket connection to a hub with shared memory on"}, nil)
		}
		return
	}
	var req shmRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			c.shmError(reply, "shm: bad request body: "+err.Error())
			return
		}
	}
	switch verb {
	case "HELLO":
		b.hello(c, req.Sid)
	case "SUB":
		b.markSub(c, req.Sid, req.Block)
	case "SEALED":
		b.sealed(c, req.Ring)
	case "TRACKING":
		b.tracking(c, req.Ring, req.Reader)
	case "DETACHED":
		b.detached(c, req.Ring, req.Sid, req.Reader)
	case "PUB":
		b.explicitRing(c, req)
	case "LIST":
		if reply != nil {
			body, _ := json.Marshal(b.list(c))
			c.sendRaw(string(reply), body, nil)
		}
	default:
		c.shmError(reply, "shm: unknown request "+verb)
	}
}

func (c *client) shmError(reply []byte, msg string) {
	c.log.Info("shm request refused", "err", msg)
	if reply != nil {
		c.sendDirect(string(reply), protocol.ShmControl{Op: "error", Error: msg}, nil)
	}
}

// sendDirect sends a control message to one of c's own subscriptions that
// matches subj, with fds attached; it reports false if none matches or the
// descriptors cannot go.
func (c *client) sendDirect(subj string, m protocol.ShmControl, fds []int) bool {
	m.Fds = len(fds)
	body, _ := json.Marshal(m)
	return c.sendRaw(subj, body, fds)
}

func (c *client) sendRaw(subj string, body []byte, fds []int) bool {
	var sid []byte
	c.mu.Lock()
	for _, s := range c.subs {
		if s.queue == "" && subject.Match(s.subject, subj) {
			sid = s.sid
			break
		}
	}
	c.mu.Unlock()
	if sid == nil {
		return false
	}
	return c.sendFrame(protocol.AppendMsg(nil, []byte(subj), sid, nil, body), fds)
}

// sendFrame queues a frame the hub makes for c, with fds attached, and
// flushes it; it reports false if the descriptors cannot go.
func (c *client) sendFrame(frame []byte, fds []int) bool {
	if len(fds) > 0 {
		if !c.enqueueFds(frame, fds) {
			return false
		}
	} else {
		c.enqueue(frame)
	}
	c.flushInline()
	return true
}

// shmCtlSubject is the subject of the hub's control messages. They go to
// the sid the client named in HELLO, which it reserved without a SUB: the
// hub's own messages to a connection need no subscribe permission.
const shmCtlSubject = "$SB.SHM.CTL"

func (b *broker) hello(c *client, sid string) {
	if !validSID(sid) {
		c.log.Info("shm: HELLO without a valid sid", "sid", sid)
		return
	}
	b.mu.Lock()
	p := b.peers[c]
	if p == nil {
		p = &shmPeer{rings: make(map[string]*ring)}
		b.peers[c] = p
	}
	p.ctl = sid
	b.mu.Unlock()
	c.shmOn = true
	c.watchPeerProcess()
	c.sendCtl(sid, protocol.ShmControl{Op: "hello"}, nil)
}

// validSID reports whether sid can go in a MSG line.
func validSID(sid string) bool {
	if sid == "" || len(sid) > 64 {
		return false
	}
	for i := 0; i < len(sid); i++ {
		if ch := sid[i]; ch <= ' ' || ch == 0x7f {
			return false
		}
	}
	return true
}

// sendCtl sends a control message, with fds attached, to the control sid
// of c; it reports false if the descriptors cannot go.
func (c *client) sendCtl(sid string, m protocol.ShmControl, fds []int) bool {
	m.Fds = len(fds)
	body, _ := json.Marshal(m)
	return c.sendFrame(protocol.AppendMsg(nil, []byte(shmCtlSubject), []byte(sid), nil, body), fds)
}

// eligible reports whether s may read rings: an shm subscription, no queue
// group, no deny filter, and an owner that needs no one-time response
// grants (those are noted by the hub on each delivery, which a ring skips).
func eligible(s *subscription) bool {
	return s.queue == "" && !s.filter && s.c.respTTL == 0 && s.shm.Load()
}

// markSub makes c's subscription sid an shm subscription and attaches it to
// the ready rings of its pattern.
func (b *broker) markSub(c *client, sid string, block bool) {
	c.mu.Lock()
	s := c.subs[sid]
	c.mu.Unlock()
	if s == nil || s.queue != "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.peers[c] == nil {
		return
	}
	s.block = block
	s.shm.Store(true)
	set := b.subs[s.subject]
	if set == nil {
		set = make(map[*subscription]struct{})
		b.subs[s.subject] = set
	}
	set[s] = struct{}{}
	if !eligible(s) {
		return
	}
	for _, r := range b.rings {
		if r.ready && r.pattern == s.subject && (r.pub != c || c.echo) {
			b.trackLocked(r, s)
		}
	}
}

// trackLocked starts attaching s to r, a ring in use: the publisher is
// given s's cursor first ("reader"), still saying NoPosition, and says
// TRACKING once it checks it before every loan; only then is s attached
// (see tracking), while the forwarder goes on serving it meanwhile. So
// the publisher cannot overwrite what s starts with before it knows of s.
func (b *broker) trackLocked(r *ring, s *subscription) {
	rp := b.peers[r.pub]
	if rp == nil || r.readers[s] != nil || r.pending[s] != nil {
		return
	}
	b.id++
	cur, err := shm.CreateCursor(fmt.Sprintf("sb-cur-%d-%d", r.id, b.id))
	if err != nil {
		s.c.log.Warn("shm: cannot create a cursor", "err", err)
		return
	}
	rr := &ringReader{id: b.id, cur: cur, block: s.block}
	if r.pending == nil {
		r.pending = make(map[*subscription]*ringReader)
	}
	r.pending[s] = rr
	r.pub.sendCtl(rp.ctl, protocol.ShmControl{Op: "reader", Ring: r.id, Reader: rr.id, Block: rr.block}, []int{cur.Fd()})
}

// tracking: the publisher of ring id tracks reader rid; attach its
// subscription.
func (b *broker) tracking(c *client, id, rid uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rings[id]
	if r == nil || r.pub != c {
		return
	}
	for s, rr := range r.pending {
		if rr.id == rid {
			delete(r.pending, s)
			b.attachLocked(r, s, rr, 0, true)
			return
		}
	}
}

// offer is called when c publishes a message that is delivered to s, an
// shm subscription: c is offered a ring for s's pattern unless it has one
// or may not have one. It runs on c's reader goroutine (or a forwarder's).
func (b *broker) offer(c *client, s *subscription) {
	if !eligible(s) || (s.c == c && !c.echo) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[c]
	if p == nil || p.rings[s.subject] != nil || len(p.rings) >= shmMaxRings {
		return
	}
	if c.restricted && !c.grant.PublishAll(s.subject) {
		c.log.Debug("shm: no ring: the publisher may not publish to all of the pattern", "pattern", s.subject)
		return
	}
	if b.h.queues != nil && b.h.queues.Overlaps(s.subject) {
		// A durable queue stores these subjects: they must go through
		// the hub's publish path, which a ring bypasses.
		return
	}
	r, err := b.newRingLocked(c, s.subject, shmDefaultSlots, c.maxPayload+shmFrameBudget)
	if err != nil {
		c.log.Warn("shm: cannot create a ring", "pattern", s.subject, "err", err)
		return
	}
	p.rings[s.subject] = r
	b.sendRingLocked(c, p, r)
}

// revoke tells the publisher of every ring whose pattern overlaps one of
// subjects (a durable queue's, just created or updated) to close it: its
// messages then go over the socket, through the hub's publish path, where
// the queue stores them. Readers read what the ring holds, then see it
// closed. Messages written before the publisher reads the revocation
// reach the subscribers but not the queue.
func (b *broker) revoke(subjects []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.rings {
		if r.revoked {
			continue
		}
		for _, s := range subjects {
			if subject.Overlap(r.pattern, s) {
				r.revoked = true
				if p := b.peers[r.pub]; p != nil {
					r.pub.sendCtl(p.ctl, protocol.ShmControl{Op: "revoke", Ring: r.id}, nil)
				}
				break
			}
		}
	}
}

// explicitRing answers a PUB request: a ring of the asked geometry for a
// literal subject, whether or not anyone subscribes.
func (b *broker) explicitRing(c *client, req shmRequest) {
	p := b.peerOf(c)
	if p == nil {
		return // no control sid to answer to
	}
	if msg := b.tryExplicit(c, p, req); msg != "" {
		c.log.Info("shm: ring refused", "subject", req.Subject, "err", msg)
		c.sendCtl(p.ctl, protocol.ShmControl{Op: "ring", Pattern: req.Subject, Explicit: true, Error: msg}, nil)
	}
}

// tryExplicit creates and sends the ring a PUB request asks for, or
// returns why not.
func (b *broker) tryExplicit(c *client, p *shmPeer, req shmRequest) string {
	if !subject.ValidPublish([]byte(req.Subject)) || isReserved([]byte(req.Subject)) {
		return fmt.Sprintf("shm: %q is not a subject a ring can carry", req.Subject)
	}
	if b.h.queues != nil && b.h.queues.Overlaps(req.Subject) {
		return fmt.Sprintf("shm: a durable queue stores %q: publish it over the socket", req.Subject)
	}
	if c.restricted {
		if d := c.grant.Publish(req.Subject); !d.Allowed {
			c.deny("publish", []byte(req.Subject), d)
			return "Permissions Violation for Publish to " + strconv.Quote(req.Subject)
		}
	}
	slots, size := req.Slots, req.SlotSize
	if slots == 0 {
		slots = shmDefaultSlots
	}
	if size == 0 {
		size = c.maxPayload
	}
	if total, err := shm.Size(slots, size+shmFrameBudget); err != nil || total > shmMaxRingBytes || size > maxMaxPayload {
		return fmt.Sprintf("shm: a ring of %d slots of %d bytes is not allowed (slots a power of two, slot_size at most %d, ring at most %d bytes)", slots, size, maxMaxPayload, shmMaxRingBytes)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.rings[req.Subject] != nil {
		return "shm: this connection already has a ring for " + req.Subject
	}
	if len(p.rings) >= shmMaxRings {
		return fmt.Sprintf("shm: at most %d rings per connection", shmMaxRings)
	}
	r, err := b.newRingLocked(c, req.Subject, slots, size+shmFrameBudget)
	if err != nil {
		return "shm: " + err.Error()
	}
	r.explicit = true
	p.rings[req.Subject] = r
	b.sendRingLocked(c, p, r)
	return ""
}

func (b *broker) newRingLocked(c *client, pattern string, slots, size int) (*ring, error) {
	b.id++
	id := b.id
	region, err := shm.CreateUnsealed(fmt.Sprintf("sb-ring-%d", id), slots, size)
	if err != nil {
		return nil, err
	}
	cur, err := shm.CreateCursor(fmt.Sprintf("sb-cur-%d-hub", id))
	if err != nil {
		region.Close()
		return nil, err
	}
	rd, err := region.NewReader()
	if err == nil {
		rd.Seek(0)
		err = rd.AttachCursor(cur)
	}
	if err != nil {
		region.Close()
		cur.Close()
		return nil, err
	}
	r := &ring{id: id, pattern: pattern, pub: c, region: region, hubCur: cur, rd: rd, created: time.Now(),
		readers: make(map[*subscription]*ringReader), interest: make(map[*subscription]struct{})}
	b.rings[id] = r
	return r, nil
}

func (b *broker) sendRingLocked(c *client, p *shmPeer, r *ring) {
	if !c.sendCtl(p.ctl, protocol.ShmControl{Op: "ring", Ring: r.id, Pattern: r.pattern, Explicit: r.explicit}, []int{r.region.Fd(), r.hubCur.Fd()}) {
		b.dropRingLocked(r)
	}
}

// list describes the rings c may see: all of them for an unrestricted
// connection, else those whose pattern it may subscribe to.
func (b *broker) list(c *client) []protocol.ShmChannel {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []protocol.ShmChannel{}
	for _, r := range b.rings {
		if c.restricted && !c.grant.Subscribe(r.pattern).Allowed {
			continue
		}
		st := r.region.Stats()
		ch := protocol.ShmChannel{Ring: r.id, Pattern: r.pattern, Publisher: peerOf(r.pub), Ready: r.ready,
			Slots: r.region.Slots(), SlotSize: r.region.SlotSize(), Forwarder: r.fwdStop != nil,
			Messages: st.Messages, Bytes: st.Bytes, Created: r.created, Readers: []protocol.ShmReader{}}
		for s, rr := range r.readers {
			ch.Readers = append(ch.Readers, protocol.ShmReader{ShmPeer: peerOf(s.c), Sid: string(s.sid), Reader: rr.id, Block: rr.block, Position: rr.cur.Position()})
		}
		for s, rr := range r.leaving {
			ch.Readers = append(ch.Readers, protocol.ShmReader{ShmPeer: peerOf(s.c), Sid: string(s.sid), Reader: rr.id, Block: rr.block, Position: rr.cur.Position(), Ended: true})
		}
		out = append(out, ch)
	}
	return out
}

func peerOf(c *client) protocol.ShmPeer {
	return protocol.ShmPeer{Cid: c.id, Who: c.who.String()}
}

// count returns the number of rings; b may be nil.
func (b *broker) count() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.rings)
}
