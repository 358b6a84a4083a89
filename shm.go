package switchboard

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"switchboard/internal/protocol"
)

// Shared memory, the client side (see docs/shm.md). On a unix socket to a
// hub whose INFO offers it, the Conn reserves a sid (no SUB) and says
// $SB.SHM.HELLO with it; every subscription outside a queue group is
// marked as a shared-memory one ($SB.SHM.SUB). The hub then hands out
// rings as memfds (SCM_RIGHTS) with control messages to that sid: "ring"
// to write a pattern's messages into and "ready" to start (shmpub.go),
// "attach" to read one for a subscription (shmsub.go), "reader" and
// "unreader" for the cursors of a ring's readers. Everything else stays on the socket, and a lost
// connection drops every ring: the next connection starts over.

// fdOOBSize is the ancillary buffer of a read: room for 16 descriptors;
// one control message carries at most 2 (and a read returns the
// descriptors of one sendmsg at most).
var fdOOBSize = unix.CmsgSpace(16 * 4)

// shmState is a Conn's shared-memory state.
type shmState struct {
	// Owned by the reader goroutine.
	fds []int // received descriptors, in order, not yet claimed

	mu      sync.Mutex
	on      bool                // the hub said hello on this connection
	hello   chan struct{}       // closed when on is set, replaced when the connection is lost
	ctl     *Subscription       // the control sid (kindCtl, never subscribed)
	pubs    map[uint64]*shmPub  // rings to write, by id
	waiters map[string]chan any // explicit ring requests by subject: *shmPub or error
	list    atomic.Pointer[[]*shmPub]
	// fast holds the rings of list whose pattern is a valid literal
	// subject that no other ring matches: Publish on such a subject
	// writes into the ring without looking further (publishFast).
	fast atomic.Pointer[[]*shmPub]
	gen  atomic.Uint64 // bumped under Conn.wmu when a ring joins list

	// What went out through rings, for Conn.Stats: the rings still mapped
	// keep their counts in their headers (the writer stores them anyway,
	// so a publish pays no atomic add of its own, which on x86 would wait
	// for the slot's cache line); a ring's counts move to retired when it
	// is closed, under mu, before it is unmapped.
	mapped       map[*shmPub]struct{}
	retiredMsgs  uint64
	retiredBytes uint64
}

// sent returns the messages and bytes (whole frames: subject, reply,
// header block and data) this Conn wrote into rings.
func (st *shmState) sent() (msgs, bytes uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	msgs, bytes = st.retiredMsgs, st.retiredBytes
	for p := range st.mapped {
		s := p.region.Stats()
		msgs += s.Messages
		bytes += s.Bytes
	}
	return msgs, bytes
}

// retire moves p's counts to the totals; p is about to be unmapped.
func (st *shmState) retire(p *shmPub) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.mapped[p]; !ok {
		return
	}
	s := p.region.Stats()
	st.retiredMsgs += s.Messages
	st.retiredBytes += s.Bytes
	delete(st.mapped, p)
}

// readFds reads from a unix socket, keeping any descriptors that come
// with the bytes.
func (c *Conn) readFds(uc *net.UnixConn, buf, oob []byte) (int, error) {
	n, oobn, flags, _, err := uc.ReadMsgUnix(buf, oob)
	if oobn > 0 {
		c.takeFds(oob[:oobn])
	}
	if flags&unix.MSG_CTRUNC != 0 {
		c.reportErr(nil, fmt.Errorf("switchboard: shared memory: descriptors from the hub were cut off"))
	}
	return n, err
}

func (c *Conn) takeFds(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		c.shm.fds = append(c.shm.fds, fds...)
	}
}

// popFds claims the next n received descriptors.
func (c *Conn) popFds(n int) ([]int, error) {
	st := c.shm
	if n < 0 || n > len(st.fds) {
		return nil, fmt.Errorf("control message names %d descriptors, %d arrived", n, len(st.fds))
	}
	fds := append([]int(nil), st.fds[:n]...)
	st.fds = st.fds[n:]
	return fds, nil
}

// shmStart reserves the control sid and says HELLO, if the hub offers
// shared memory on this connection. Called once connected (and again
// after each reconnect, with c.mu held by nobody).
func (c *Conn) shmStart(info *protocol.Info) {
	if c.shm == nil || !info.SharedMemory {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.draining {
		return
	}
	st := c.shm
	st.mu.Lock()
	if st.ctl == nil {
		c.ssid++
		s := &Subscription{
			Subject: "$SB.SHM.CTL",
			conn:    c,
			sid:     c.ssid,
			sidStr:  strconv.FormatUint(c.ssid, 10),
			kind:    kindCtl,
			kick:    make(chan struct{}, 1),
		}
		// No SUB: the hub sends its control messages to this sid on its
		// own, whatever the policy lets the connection subscribe to.
		c.subs[s.sid] = s
		st.ctl = s
	}
	sid := st.ctl.sidStr
	st.mu.Unlock()
	c.shmSendLocked("HELLO", "", map[string]string{"sid": sid})
	for _, s := range c.subs {
		c.shmMarkLocked(s)
	}
}

// shmSendLocked publishes a $SB.SHM request over the socket. Called with
// c.mu held.
func (c *Conn) shmSendLocked(verb, reply string, body any) {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	c.wmu.Lock()
	c.out = protocol.AppendPub(c.out, "$SB.SHM."+verb, reply, b)
	wake := c.status.Load() == statusConnected && !c.flushing
	c.wmu.Unlock()
	if wake {
		c.wakeFlusher()
	}
}

// shmMarkLocked asks the hub to treat s as a shared-memory subscription.
// Called with c.mu held, after s's SUB was queued.
func (c *Conn) shmMarkLocked(s *Subscription) {
	if c.shm == nil || s.Queue != "" || s.kind == kindCtl || s.unsubSent {
		return
	}
	c.shm.mu.Lock()
	ctl := c.shm.ctl
	c.shm.mu.Unlock()
	if ctl == nil {
		return // before HELLO: shmStart marks every subscription
	}
	c.shmSendLocked("SUB", "", map[string]any{"sid": s.sidStr, "block": !c.opts.ShmDrop})
}

// shmControl handles a control message from the hub (on the reader).
func (c *Conn) shmControl(f *protocol.Frame) {
	var m protocol.ShmControl
	if err := json.Unmarshal(f.Payload[f.HeaderLen:], &m); err != nil {
		c.reportErr(nil, fmt.Errorf("switchboard: shared memory: bad control message: %w", err))
		return
	}
	fds, err := c.popFds(m.Fds)
	if err != nil {
		c.reportErr(nil, fmt.Errorf("switchboard: shared memory: %q: %w", m.Op, err))
		return
	}
	if err := c.shmOp(&m, fds); err != nil {
		closeFds(fds)
		c.reportErr(nil, fmt.Errorf("switchboard: shared memory: %s ring %d: %w", m.Op, m.Ring, err))
	}
}

func (c *Conn) shmOp(m *protocol.ShmControl, fds []int) error {
	st := c.shm
	switch m.Op {
	case "hello":
		st.mu.Lock()
		if !st.on {
			st.on = true
			close(st.hello)
		}
		st.mu.Unlock()
		return nil
	case "ring":
		return c.shmRing(m, fds)
	case "ready":
		return c.shmReady(m, fds)
	case "attach":
		return c.shmAttach(m, fds)
	case "reader":
		return c.shmReader(m, fds)
	case "unreader":
		c.shmUnreader(m)
		return nil
	case "revoke":
		// A durable queue stores the ring's subjects now: publish them
		// over the socket from here on.
		if p := c.shmPubByID(m.Ring); p != nil {
			p.close()
		}
		return nil
	case "error":
		return fmt.Errorf("hub: %s", m.Error)
	}
	return fmt.Errorf("unknown control op %q", m.Op)
}

// shmLost drops every ring when the connection is lost. The subscriptions'
// ring readers stop, after queueing what the rings held (as the pump does
// for the rings it reads); publishes go over the socket until the hub
// hands out new rings on the next connection.
func (c *Conn) shmLost() {
	st := c.shm
	if st == nil {
		return
	}
	st.mu.Lock()
	if st.on {
		st.on = false
		st.hello = make(chan struct{})
	}
	pubs := st.pubs
	st.pubs = nil
	st.list.Store(nil)
	st.fast.Store(nil)
	waiters := st.waiters
	st.waiters = nil
	st.mu.Unlock()
	for _, p := range pubs {
		p.close()
	}
	for _, ch := range waiters {
		ch <- ErrShmUnavailable
	}
	c.mu.RLock()
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.RUnlock()
	for _, s := range subs {
		s.shmDetachAll(true)
	}
}

// shmReleaseFds closes descriptors that arrived but were never claimed
// (on the reader, when its connection ends).
func (c *Conn) shmReleaseFds() {
	if c.shm != nil {
		closeFds(c.shm.fds)
		c.shm.fds = nil
	}
}

func closeFds(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
