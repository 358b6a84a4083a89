package switchboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/internal/protocol"
	"switchboard/internal/subject"
	"switchboard/shm"
)

// subRing is a ring one subscription reads. The process's ring pump reads
// the rings of callback, channel and request subscriptions and hands each
// message to the subscription like the socket reader does (shmpump.go); a
// SubscribeSync subscription reads it in NextMsg itself (see pollRings),
// and sleeps on it in sleepRings (or, when another goroutine sleeps for
// the subscription already, with a watcher goroutine per ring).
type subRing struct {
	id      uint64
	reader  uint64 // the hub's id of this reader, for DETACHED
	pattern string
	region  *shm.Region
	cur     *shm.Cursor
	cancel  context.CancelFunc
	ctx     context.Context

	mu      sync.Mutex // one reader at a time; guards rd and gone
	rd      *shm.Reader
	gone    bool // closed: region and cursor unmapped
	resp    *respMux
	direct  bool // read by NextMsg (kindSync)
	fc      shm.FrameCache
	okSubj  string // the last subject that passed the checks
	okReply string // the last reply subject that passed the checks
	bareOK  bool   // the pattern passed the checks as a bare message's subject
	view    View   // what NextView returns for this ring; r.mu held until Release
	// viewOut is set while a View of r is lent out (holding r.mu);
	// dropPending asks its Release to unmap r (see shmDetachAll), and
	// drainPending to queue what r holds first.
	viewOut      atomic.Bool
	dropPending  atomic.Bool
	drainPending atomic.Bool
	drainTo      atomic.Uint64 // with drainPending: the write sequence when the ring was detached
}

// frame parses the frame in a view of r into f and checks it: a subject
// the ring's pattern matches, a valid reply subject. Called with r.mu
// held.
func (r *subRing) frame(data []byte, f *shm.Frame) bool {
	if r.rd.Bare() {
		// Sent with SendBare: the data alone, on the ring's pattern, which
		// must then be a subject to publish on.
		if !r.bareOK {
			if !validSubject(r.pattern, false) {
				return false
			}
			r.bareOK = true
		}
		*f = shm.Frame{Subject: r.pattern, Body: data}
		return true
	}
	if r.fc.Parse(data, f) != nil {
		return false
	}
	if f.Subject != r.okSubj {
		if !validSubject(f.Subject, false) || !subject.Match(r.pattern, f.Subject) {
			return false
		}
		r.okSubj = f.Subject
	}
	if f.Reply != "" && f.Reply != r.okReply {
		if !validSubject(f.Reply, false) {
			return false
		}
		r.okReply = f.Reply
	}
	return true
}

// cachedBody is the fast path of frame: for a bare message on a ring whose
// pattern passed the checks, or if data starts like the last frame r's
// cache parsed and that frame passed r's checks (subject, reply, no
// header block), it returns the body, the subject and the reply subject.
// Otherwise the caller parses (frame). Called with r.mu held.
func (r *subRing) cachedBody(data []byte) (body []byte, subj, reply string, ok bool) {
	if r.rd.Bare() {
		return data, r.pattern, "", r.bareOK
	}
	b, ok := r.fc.Body(data)
	return b, r.fc.Subject, r.fc.Reply, ok && r.fc.Subject == r.okSubj && (r.fc.Reply == "" || r.fc.Reply == r.okReply)
}

// next is r.rd.TryNext with its common case (Reader.TakeNext) first:
// the pump and NextMsg read through it. Called with r.mu held.
func (r *subRing) next() (shm.Msg, error) {
	if data, ok := r.rd.TakeNext(); ok {
		return shm.Msg{Data: data, Seq: r.rd.Pos() - 1}, nil // nothing missed before it
	}
	return r.rd.TryNext()
}

// shmAttach starts reading a ring for the subscription the hub names.
func (c *Conn) shmAttach(m *protocol.ShmControl, fds []int) error {
	if len(fds) != 2 {
		return fmt.Errorf("an attach comes with 2 descriptors, not %d", len(fds))
	}
	sid, err := strconv.ParseUint(m.Sid, 10, 64)
	if err != nil {
		return fmt.Errorf("bad sid %q", m.Sid)
	}
	c.mu.RLock()
	s, resp := c.subs[sid], c.resp
	c.mu.RUnlock()
	if s == nil || s.Subject != m.Pattern {
		closeFds(fds) // unsubscribed meanwhile
		c.shmDetached(m.Ring, m.Sid, m.Reader)
		return nil
	}
	region, err := shm.OpenReader(fds[0])
	if err != nil {
		return err
	}
	cur, err := shm.OpenCursor(fds[1], true)
	if err != nil {
		region.Close()
		closeFds(fds[1:])
		return err
	}
	rd, err := region.NewReader()
	if err != nil {
		region.Close()
		cur.Close()
		return err
	}
	rd.Seek(m.Start)
	rd.AttachCursor(cur)
	ctx, cancel := context.WithCancel(c.ctx)
	r := &subRing{id: m.Ring, reader: m.Reader, pattern: m.Pattern, region: region, cur: cur, rd: rd, ctx: ctx, cancel: cancel,
		resp: resp, direct: s.kind == kindSync}
	s.mu.Lock()
	if s.closed || s.finishing {
		s.mu.Unlock()
		cancel()
		region.Close()
		cur.Close()
		c.shmDetached(m.Ring, m.Sid, m.Reader)
		return nil
	}
	s.rings = append(s.rings, r)
	s.ringsChangedLocked()
	s.mu.Unlock()
	if r.direct {
		s.wake() // a NextMsg asleep now has a ring to watch
		return nil
	}
	pump.add(c, s, r)
	return nil
}

// ringDeliver hands the message whose view is m to s: it is copied, then
// kept only if the view was intact (Release). Called with r.mu held; last
// reports that the message reached the AutoUnsubscribe count, and the
// caller must then call endCounted once it let go of r.mu.
func (c *Conn) ringDeliver(s *Subscription, r *subRing, m shm.Msg) (last bool) {
	if m.Missed > 0 {
		s.missed(m.Missed)
	}
	if s.kind != kindResp {
		if b, subj, reply, ok := r.cachedBody(m.Data); ok {
			msg := &Msg{Subject: subj, Reply: reply, Data: bytes.Clone(b), Sub: s, size: len(b)}
			if !r.rd.Release() {
				s.missed(1)
				return false
			}
			c.inMsgs.Add(1)
			c.inBytes.Add(uint64(len(b)))
			return s.deliver(msg)
		}
	}
	var f shm.Frame
	ok := r.frame(m.Data, &f)
	var fr protocol.Frame
	var msg *Msg
	switch {
	case !ok:
	case s.kind == kindResp:
		// The mux copies the payload again; it must not see the ring.
		fr = protocol.Frame{Op: protocol.OpMsg, Subject: []byte(f.Subject), HeaderLen: f.HdrLen, Payload: bytes.Clone(f.Body)}
		if f.Reply != "" {
			fr.Reply = []byte(f.Reply)
		}
	default:
		var herr error
		msg, herr = newRingMsg(&f, s) // copies out of the ring
		if herr != nil {
			msg.Header = nil // a malformed header block from a peer: deliver without it
		}
	}
	if !r.rd.Release() || !ok {
		s.missed(1)
		return false
	}
	c.inMsgs.Add(1)
	c.inBytes.Add(uint64(len(f.Body)))
	if s.kind == kindResp {
		r.resp.deliver(&fr, s)
		return false
	}
	return s.deliver(msg)
}

// newRingMsg is newMsg for a frame read from a shared-memory ring: the
// subjects are strings already (the reader's cache keeps the last ones,
// so a stream on one subject allocates them once), and only the data is
// copied out of the ring.
func newRingMsg(f *shm.Frame, sub *Subscription) (*Msg, error) {
	m := &Msg{Subject: f.Subject, Reply: f.Reply, Data: bytes.Clone(f.Data()), Sub: sub, size: len(f.Body)}
	if f.HdrLen > 0 {
		return m, m.parseHeader(f.Header())
	}
	return m, nil
}

// dropRingLocked unmaps r and forgets it. Called with r.mu held.
func (c *Conn) dropRingLocked(s *Subscription, r *subRing) {
	if r.gone {
		return
	}
	r.gone = true
	r.cancel()
	s.dropRing(r)
	r.region.Close()
	r.cur.Close()
	c.shmDetached(r.id, s.sidStr, r.reader)
}

// shmDetached tells the hub that subscription sid no longer maps ring:
// the hub keeps the publisher waiting for the cursor of a subscription
// that ended with its connection alive until it hears this, so that a
// drain gets what the ring held.
func (c *Conn) shmDetached(ring uint64, sid string, reader uint64) {
	if c.status.Load() == statusConnected {
		c.shmSendLocked("DETACHED", "", map[string]any{"ring": ring, "sid": sid, "reader": reader})
	}
}

// pollRings reads, without waiting, one message from each ring of a
// SubscribeSync subscription into its queue; it reports whether it found
// any. Rings another caller is reading are skipped.
func (s *Subscription) pollRings() bool {
	rings := s.ringList()
	found := false
	for _, r := range rings {
		if !r.mu.TryLock() {
			continue
		}
		last := false
		if !r.gone {
			m, err := r.next()
			switch {
			case err == shm.ErrEmpty:
			case err == nil && s.beyondDrain(r, m):
				// Published after the drain of this ring began: not for
				// us. (Checked per message, not per poll: a check in the
				// spin cost a round trip about 70 ns.)
			case err == nil:
				last = s.conn.ringDeliver(s, r, m)
				found = true
			case errors.Is(err, shm.ErrClosed):
				s.conn.dropRingLocked(s, r)
			}
		}
		r.mu.Unlock()
		if last {
			s.conn.endCounted(s)
			return true
		}
	}
	return found
}

// watchRings starts a goroutine per ring that waits (spin, then futex)
// until it has a message, and wakes the subscription, for a NextMsg or
// NextView about to sleep; stop ends them.
func (s *Subscription) watchRings(ctx context.Context) (stop func()) {
	s.mu.Lock()
	rings := s.rings
	s.mu.Unlock()
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, r := range rings {
		if r.viewOut.Load() {
			// Lent out as a View (maybe the caller's own, still held):
			// a watcher would wait for r.mu until its Release, and stop
			// for the watcher. Nothing can be read from it meanwhile.
			continue
		}
		wg.Add(1)
		unhook := context.AfterFunc(r.ctx, cancel) // detached: stop waiting
		s.conn.spawn(func(*worker) {
			defer unhook()
			defer wg.Done()
			if !lockUnlessDone(&r.mu, wctx) {
				return
			}
			var err error
			if !r.gone {
				r.rd.SetSpin(false)   // waitFor spun already
				err = r.rd.Wait(wctx) // reads nothing: NextMsg/NextView do
			}
			r.mu.Unlock()
			if err == nil {
				s.wake()
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// lockUnlessDone takes mu, or gives up when ctx ends. A watcher finds the
// ring held only while another goroutine reads or sleeps on it (a second
// caller of NextMsg on the subscription); with a plain Lock, the stop of
// this wait waited for that other goroutine, and a deadline of this
// caller's passed unnoticed (TestShmSyncSecondCallerDeadline). It polls
// every millisecond meanwhile.
func lockUnlessDone(mu *sync.Mutex, ctx context.Context) bool {
	if mu.TryLock() {
		return true
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			if mu.TryLock() {
				return true
			}
		}
	}
}

// missed counts messages the subscription lost in a ring (overwritten
// before it read them) and reports them like dropped ones.
func (s *Subscription) missed(n uint64) {
	s.mu.Lock()
	// A hostile writer can make a ring claim any count: saturate.
	s.dropped = int(min(uint64(s.dropped)+min(n, math.MaxInt32), math.MaxInt))
	report := !s.slow
	s.slow = true
	if report && s.kind == kindSync {
		s.slowNext = true
		s.note()
	}
	s.mu.Unlock()
	if report {
		s.conn.reportErr(s, fmt.Errorf("%w: %d messages overwritten in shared memory before they were read", ErrSlowConsumer, n))
	}
}

func (s *Subscription) dropRing(r *subRing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.rings {
		if o == r {
			s.rings = append(s.rings[:i:i], s.rings[i+1:]...)
			s.ringsChangedLocked()
			if s.finishing && len(s.rings) == 0 {
				s.wake() // the delivery goroutine waits for the pump to drain
			}
			return
		}
	}
}

// shmDetachAll stops reading every ring: the subscription ended, or the
// connection was lost (drain false), or it finishes (drain true: Drain, or
// the AutoUnsubscribe count reached). A finishing subscription gets what
// its rings hold already, as the socket reader hands over what it has
// read: the ring pump empties the rings of callback, channel and request
// subscriptions before it unmaps them, and those of a SubscribeSync
// subscription are emptied into its queue here.
func (s *Subscription) shmDetachAll(drain bool) {
	s.mu.Lock()
	rings := s.rings
	s.mu.Unlock()
	for _, r := range rings {
		if drain && !r.drainPending.Load() {
			// The first drain sets the end: a later one (the Conn's
			// Drain after the subscription's) would move it past messages
			// published after the first UNSUB.
			r.drainTo.Store(r.region.Stats().WriteSeq)
			r.drainPending.Store(true)
		}
		r.cancel()
		if !r.direct {
			continue // the pump drains and drops it
		}
		// No goroutine owns it: unmap it here (a watcher or sleepRings,
		// cancelled above, lets go of it first). A View lent out holds r.mu until its
		// Release, maybe on this very goroutine (AutoUnsubscribe or Close
		// with a View in hand): then Release unmaps it. Dekker with
		// Release, which clears viewOut, then loads dropPending: one of
		// the two sees the other, and a second drop is a no-op.
		r.dropPending.Store(true)
		if r.viewOut.Load() {
			continue
		}
		r.mu.Lock()
		last := s.conn.detachRingLocked(s, r)
		r.mu.Unlock()
		if last {
			s.conn.endCounted(s)
		}
	}
}

// detachRingLocked unmaps r, a detached ring of a SubscribeSync
// subscription. If the detach was a drain, it first queues what r held
// when it was detached (what was published after is not for this
// subscription, as the hub would not have sent it), up to as many
// messages as the pump drains from a ring, and counts what the reader
// skipped and had not reported yet. last reports that a queued message
// reached the AutoUnsubscribe count: the caller calls endCounted once it
// let go of r.mu. Called with r.mu held.
func (c *Conn) detachRingLocked(s *Subscription, r *subRing) (last bool) {
	if r.drainPending.Load() && !r.gone {
	drain:
		for range pumpDrainBatches * pumpBatch {
			if s.takesNoMore() {
				break
			}
			switch c.ringStepLocked(s, r) {
			case pumpFound, pumpSkipped:
			case pumpLast:
				last = true
				break drain
			default: // empty, closed, or the drain's end
				break drain
			}
		}
		s.countUnreported(r)
	}
	c.dropRingLocked(s, r)
	return last
}

// beyondDrain reports whether m, just read from r, was published after
// r's drain began: a reader the publisher lapped jumps ahead, maybe past
// the drain's end. Then m is released undelivered and the messages the
// jump skipped before the end are counted as missed. Called with r.mu
// held.
func (s *Subscription) beyondDrain(r *subRing, m shm.Msg) bool {
	if !r.drainPending.Load() {
		return false
	}
	to := r.drainTo.Load()
	if m.Seq < to {
		return false
	}
	r.rd.Release()
	if first := m.Seq - min(m.Missed, m.Seq); first < to && !s.takesNoMore() {
		s.missed(to - first)
	}
	return true
}

// countUnreported counts, before r is unmapped at the end of a drain, what
// the reader of r skipped and no message reported yet, and what the drain
// left unread: a drain reads at most pumpDrainBatches*pumpBatch messages,
// and a ring of more slots can hold more. Of a skip, [pos-n, pos), only
// the part before the drain's end counts: the rest was published after
// the drain began. Nothing counts beyond what an AutoUnsubscribe count
// would still have taken. Called with r.mu held.
func (s *Subscription) countUnreported(r *subRing) {
	n, pos := r.rd.Unreported(), r.rd.Pos()
	if r.drainPending.Load() {
		if to := r.drainTo.Load(); pos < to {
			n += to - pos
		} else {
			n -= min(n, pos-to)
		}
	}
	if n == 0 {
		return
	}
	s.mu.Lock()
	if s.closed || s.countReachedLocked() {
		n = 0
	} else if s.max > 0 {
		n = min(n, uint64(s.max-s.receivedLocked()))
	}
	s.mu.Unlock()
	if n > 0 {
		s.missed(n)
	}
}

// ringsChangedLocked publishes a change of s.rings to the readers that do
// not take s.mu; called with s.mu held. s.rings is never modified in
// place (append to a full-capacity slice, or a copy), so the snapshot stays
// valid.
func (s *Subscription) ringsChangedLocked() {
	snap := s.rings
	s.ringSnap.Store(&snap)
	s.nrings.Store(int32(len(snap)))
}

// ringSpinners counts the goroutines of this process spinning on rings
// (or about to); at most maxRingSpinners spin at once, the others sleep
// at once (futex). On 2 CPUs ten subscriptions spinning would starve the
// publisher and each other.
var ringSpinners atomic.Int32

var maxRingSpinners = int32(max(1, runtime.GOMAXPROCS(0)))

// acquireSpin reports whether the caller may spin; if so it must call
// releaseSpin when it stops.
func acquireSpin() bool {
	if ringSpinners.Add(1) <= maxRingSpinners {
		return true
	}
	ringSpinners.Add(-1)
	return false
}

func releaseSpin() { ringSpinners.Add(-1) }

// ringList returns the rings s reads, without taking s.mu.
func (s *Subscription) ringList() []*subRing {
	if p := s.ringSnap.Load(); p != nil {
		return *p
	}
	return nil
}
