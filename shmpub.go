package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/internal/protocol"
	"switchboard/internal/subject"
	"switchboard/shm"
)

// ErrShmUnavailable means a shared-memory ring could not be had: the
// connection is not on a unix socket, the hub has shared memory off, the
// connection was lost, or the hub refused (the error says why).
var ErrShmUnavailable = errors.New("switchboard: shared memory unavailable")

// shmPub is a ring this Conn writes: every message it publishes on a
// subject that matches pattern goes into it.
type shmPub struct {
	st      *shmState
	id      uint64
	pattern string
	literal bool
	valid   bool // literal and a valid subject (publishFast)
	// fastMax is the most data publishFast puts into the ring: what fits
	// in a slot as a frame on pattern (bare, it takes less), or -1 if
	// even that would make a PUB line longer than the hub takes (then
	// the general path says why).
	fastMax  int
	explicit bool

	// ready is closed when the hub has attached the first readers: the
	// ring takes messages from then on (shmPublish waits for it).
	ready     chan struct{}
	readyOnce sync.Once
	isReady   atomic.Bool // ready is closed: Publish checks this, not the channel

	mu     sync.Mutex // one writer at a time; guards closed
	region *shm.Region
	w      *shm.Writer
	closed bool
	gone   atomic.Bool // closed, for readers that do not hold mu

	cmu  sync.Mutex             // guards curs; never held while waiting for mu
	curs map[uint64]*shm.Cursor // readers' cursors by reader id (0: the hub's)
}

// shmReadyWait bounds how long a publish waits for a new ring's "ready".
const shmReadyWait = 2 * time.Second

// shmRing maps a ring the hub handed out for writing, seals it and tells
// the hub it is ready.
func (c *Conn) shmRing(m *protocol.ShmControl, fds []int) error {
	st := c.shm
	if m.Error != "" {
		c.shmAnswer(m.Pattern, fmt.Errorf("%w: %s", ErrShmUnavailable, m.Error))
		return nil
	}
	if len(fds) != 2 {
		return fmt.Errorf("a ring comes with 2 descriptors, not %d", len(fds))
	}
	region, err := shm.OpenWriter(fds[0])
	if err != nil {
		return err
	}
	w, err := region.Writer()
	if err != nil {
		region.Close()
		return err
	}
	cur, err := shm.OpenCursor(fds[1], false)
	if err != nil {
		region.Close()
		return err
	}
	// The hub's forwarder serves socket subscribers; like a socket, it
	// holds the publisher back rather than lose their messages.
	w.AddReader(0, cur, true)
	p := &shmPub{st: st, id: m.Ring, pattern: m.Pattern, literal: subject.Literal(m.Pattern), explicit: m.Explicit,
		valid:  subject.Literal(m.Pattern) && validSubject(m.Pattern, false),
		region: region, w: w, curs: map[uint64]*shm.Cursor{0: cur}, ready: make(chan struct{})}
	p.fastMax = w.SlotSize() - shm.FrameSize(m.Pattern, "", 0)
	if pubLineLen(p.pattern, "", 0, p.fastMax) > maxControlLine {
		p.fastMax = -1
	}
	// The ring joins the list Publish consults, and SEALED is queued, in
	// one step under wmu: a publish either went out over the socket before
	// SEALED, or it sees the ring (and waits for "ready"). Publish checks
	// gen again under wmu to know which.
	body, _ := json.Marshal(map[string]uint64{"ring": m.Ring})
	c.wmu.Lock()
	st.mu.Lock()
	if st.pubs == nil {
		st.pubs = make(map[uint64]*shmPub)
	}
	st.pubs[p.id] = p
	if st.mapped == nil {
		st.mapped = make(map[*shmPub]struct{})
	}
	st.mapped[p] = struct{}{}
	st.refreshLocked()
	st.mu.Unlock()
	st.gen.Add(1)
	c.out = protocol.AppendPub(c.out, "$SB.SHM.SEALED", "", body)
	wake := c.status.Load() == statusConnected && !c.flushing
	c.wmu.Unlock()
	if wake {
		c.wakeFlusher()
	}
	return nil
}

// shmReady: the hub attached the ring's first readers (their cursors came
// just before, as "reader" messages); start writing.
func (c *Conn) shmReady(m *protocol.ShmControl, fds []int) error {
	p := c.shmPubByID(m.Ring)
	if p == nil {
		closeFds(fds)
		return nil
	}
	closeFds(fds) // none expected
	p.markReady()
	if p.explicit {
		c.shmAnswer(p.pattern, p)
	}
	return nil
}

// addReader tracks a reader's cursor (fd, which it takes over).
func (p *shmPub) addReader(id uint64, fd int, block bool) error {
	cur, err := shm.OpenCursor(fd, false)
	if err != nil {
		return err
	}
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if p.curs == nil { // closed
		cur.Close()
		return nil
	}
	if err := p.w.AddReader(id, cur, block); err != nil {
		cur.Close()
		return err
	}
	p.curs[id] = cur
	return nil
}

// refreshLocked republishes the list Publish consults.
func (st *shmState) refreshLocked() {
	l := make([]*shmPub, 0, len(st.pubs))
	for _, p := range st.pubs {
		l = append(l, p)
	}
	var fast []*shmPub
	for _, p := range l {
		if p.valid && !slices.ContainsFunc(l, func(q *shmPub) bool { return q != p && q.matches(p.pattern) }) {
			fast = append(fast, p)
		}
	}
	st.fast.Store(&fast)
	st.list.Store(&l)
}

// shmAnswer completes an explicit ring request for subj.
func (c *Conn) shmAnswer(subj string, v any) {
	st := c.shm
	st.mu.Lock()
	ch := st.waiters[subj]
	delete(st.waiters, subj)
	st.mu.Unlock()
	if ch != nil {
		ch <- v // cap 1
	}
}

func (c *Conn) shmReader(m *protocol.ShmControl, fds []int) error {
	if len(fds) != 1 {
		return fmt.Errorf("a reader comes with 1 descriptor, not %d", len(fds))
	}
	p := c.shmPubByID(m.Ring)
	if p == nil {
		closeFds(fds) // the ring is gone already
		return nil
	}
	if err := p.addReader(m.Reader, fds[0], m.Block); err != nil {
		return err
	}
	select {
	case <-p.ready:
	default:
		return nil // one of the first readers: "ready" follows
	}
	// A late reader: the hub attaches it only now that the publisher
	// tracks its cursor.
	c.mu.Lock()
	c.shmSendLocked("TRACKING", "", map[string]uint64{"ring": m.Ring, "reader": m.Reader})
	c.mu.Unlock()
	return nil
}

func (c *Conn) shmUnreader(m *protocol.ShmControl) {
	p := c.shmPubByID(m.Ring)
	if p == nil {
		return
	}
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if cur := p.curs[m.Reader]; cur != nil {
		p.w.RemoveReader(m.Reader) // returns once the writer is done with it
		delete(p.curs, m.Reader)
		cur.Close()
	}
}

func (c *Conn) shmPubByID(id uint64) *shmPub {
	c.shm.mu.Lock()
	defer c.shm.mu.Unlock()
	return c.shm.pubs[id]
}

// close marks the ring closed for its readers and unmaps it.
func (p *shmPub) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.gone.Store(true)
	p.w.Close()
	p.cmu.Lock()
	for _, cur := range p.curs {
		cur.Close()
	}
	p.curs = nil
	p.cmu.Unlock()
	p.st.retire(p)
	p.region.Close()
	p.markReady() // wake publishes waiting for it: they go by socket
}

func (p *shmPub) markReady() {
	p.readyOnce.Do(func() {
		p.isReady.Store(true)
		close(p.ready)
	})
}

// matches reports whether a message on subj goes into p.
func (p *shmPub) matches(subj string) bool {
	if p.literal {
		return p.pattern == subj
	}
	return subject.Match(p.pattern, subj)
}

// publishFast writes a message with no reply subject and no header into
// the ring that is the only one of this Conn for subj, if there is one
// and it takes messages: the common case of a stream, in fewer steps than
// Conn.publish and shmPublish take (subj was checked when the ring came,
// and no other ring can want the message). It reports false, having
// written nothing, when the general path must decide.
func (c *Conn) publishFast(ctx context.Context, subj string, data []byte) (bool, error) {
	lp := c.shm.fast.Load()
	if lp == nil {
		return false, nil
	}
	for _, p := range *lp {
		if p.pattern != subj {
			continue
		}
		// Checked once per ring (fastMax) where they can be: the slot's
		// room and the protocol line's length. Every publish costs a
		// stream a few ns; each check here was one.
		if !p.isReady.Load() || len(data) > p.fastMax || int64(len(data)) > c.maxPayload.Load() {
			return false, nil
		}
		return p.writeFast(ctx, data)
	}
	return false, nil
}

// shmPublish writes a message into every ring of this Conn whose pattern
// matches subj. It reports false, having written nothing, when no ring
// matches or one cannot take the message (then it goes over the socket,
// where the hub delivers it to everyone, ring readers included).
func (c *Conn) shmPublish(ctx context.Context, subj, reply string, hb, data []byte) (bool, error) {
	lp := c.shm.list.Load()
	if lp == nil || len(*lp) == 0 || strings.HasPrefix(reply, "$SB.") {
		return false, nil
	}
	var hit [4]*shmPub
	match := hit[:0]
	for _, p := range *lp {
		if p.matches(subj) {
			match = append(match, p)
		}
	}
	if len(match) == 0 {
		return false, nil
	}
	for _, p := range match {
		if !p.waitReady(ctx) {
			return false, nil
		}
	}
	size := shm.FrameSize(subj, reply, len(hb)+len(data))
	for _, p := range match {
		if size > p.w.SlotSize() {
			return false, nil
		}
	}
	for i, p := range match {
		if err := p.write(ctx, subj, reply, hb, data, size); err != nil {
			if i == 0 && errors.Is(err, errShmPubClosed) {
				return false, nil
			}
			return true, err
		}
	}
	return true, nil
}

var errShmPubClosed = errors.New("ring closed")

// write puts one frame into p.
func (p *shmPub) write(ctx context.Context, subj, reply string, hb, data []byte, size int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errShmPubClosed
	}
	buf, err := p.w.LoanCtx(ctx, size)
	if err != nil {
		return fmt.Errorf("switchboard: publish %q: %w", subj, err)
	}
	// Conn.publish validated subj and reply as NATS subjects, which is
	// stricter than a frame asks.
	body, err := shm.PutCheckedFrame(buf, subj, reply, len(hb))
	if err != nil {
		return fmt.Errorf("switchboard: publish %q: %w", subj, err)
	}
	n := copy(body, hb)
	copy(body[n:], data)
	return p.w.Send(size)
}

// writeFast puts one message on p's subject, with no reply and no header,
// into p (publishFast), bare: its data alone.
func (p *shmPub) writeFast(ctx context.Context, data []byte) (bool, error) {
	p.mu.Lock() // not deferred: nothing below panics
	if p.closed {
		p.mu.Unlock()
		return false, nil // the general path decides
	}
	// The subject is the ring's literal pattern, with no reply subject
	// and no headers: the message goes bare, its data alone.
	buf, err := p.w.LoanCtx(ctx, len(data))
	if err != nil {
		p.mu.Unlock()
		return true, fmt.Errorf("switchboard: publish %q: %w", p.pattern, err)
	}
	copy(buf, data)
	err = p.w.SendBare(len(data))
	p.mu.Unlock()
	return true, err
}

var errTooBigForRing = errors.New("message larger than the ring's slots")

// loan starts a zero-copy message of n bytes on subj; called with p.mu
// held, which the caller keeps until send.
func (p *shmPub) loan(subj string, n int) ([]byte, error) {
	size := shm.FrameSize(subj, "", n)
	if size > p.w.SlotSize() {
		return nil, errTooBigForRing
	}
	buf, err := p.w.LoanCtx(context.Background(), size)
	if err != nil {
		return nil, fmt.Errorf("switchboard: publish %q: %w", subj, err)
	}
	body, err := shm.PutFrame(buf, subj, "", 0)
	if err != nil {
		return nil, fmt.Errorf("switchboard: publish %q: %w", subj, err)
	}
	return body[:n:n], nil
}

// send publishes the loaned message with n bytes of data; called with
// p.mu held.
func (p *shmPub) send(subj string, n int) error {
	return p.w.Send(shm.FrameSize(subj, "", n))
}

func (p *shmPub) isClosed() bool { return p.gone.Load() }

// waitReady waits until p takes messages; false means it never will (the
// connection was lost, or the hub did not answer).
func (p *shmPub) waitReady(ctx context.Context) bool {
	if p.isReady.Load() {
		return !p.isClosed()
	}
	select {
	case <-p.ready:
		return !p.isClosed()
	default:
	}
	if ctx == nil {
		ctx = context.Background()
	}
	t := time.NewTimer(shmReadyWait)
	defer t.Stop()
	select {
	case <-p.ready:
		return !p.isClosed()
	case <-t.C:
		p.close()
		return false
	case <-ctx.Done():
		return false
	}
}
