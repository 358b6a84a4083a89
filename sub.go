package switchboard

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/shm"
)

// subKind says how a subscription's messages are delivered.
type subKind uint8

const (
	kindCallback subKind = iota // pending queue drained by the subscription's goroutine
	kindChan                    // non-blocking send into the caller's channel
	kindSync                    // pending queue drained by NextMsg
	kindResp                    // the Conn's request inbox (request.go)
	kindCtl                     // the Conn's shared-memory control inbox (shm.go)
)

// Subscription is interest in a subject, created by one of Conn's Subscribe
// methods. Its methods are safe for concurrent use.
type Subscription struct {
	// Subject is the subject (possibly with wildcards) subscribed to.
	Subject string
	// Queue is the queue group, "" for a plain subscription.
	Queue string

	conn   *Conn
	sid    uint64
	sidStr string
	kind   subKind
	cb     func(*Msg)
	ch     chan *Msg
	worker *worker       // the delivery goroutine (kindCallback)
	done   chan struct{} // closed when the delivery goroutine exits (kindCallback)
	kick   chan struct{} // cap 1: a message was queued, or the state changed

	// unsubSent is set (under conn.mu) when an UNSUB was sent by Drain, so
	// that a reconnect does not subscribe again.
	unsubSent bool

	mu         sync.Mutex
	q          []*Msg // pending messages are q[head:]
	head       int
	pendBytes  int
	msgLimit   int   // <= 0: unlimited
	bytesLimit int   // <= 0: unlimited
	received   int64 // messages delivered (dropped ones included), for AutoUnsubscribe; see also viewed
	base       int64 // received when the current SUB was sent (the hub counts from there)
	max        int64 // AutoUnsubscribe count; 0 = none
	dropped    int
	slow       bool                       // in a slow-consumer episode (reported once)
	slowNext   bool                       // NextMsg owes the caller ErrSlowConsumer
	closed     bool                       // unsubscribed or Conn closed: deliver nothing more
	finishing  bool                       // drained or count reached: deliver what is queued, then stop
	rings      []*subRing                 // shared-memory rings it reads (shmsub.go)
	nrings     atomic.Int32               // len(rings), read without mu
	ringSnap   atomic.Pointer[[]*subRing] // a copy of rings, read without mu
	// attn says that popQueued has something to do (a queued message,
	// slowNext, closed or finishing); stored under mu by note, loaded
	// without it, so that NextView on a ring-only subscription takes no
	// lock per message to find the queue empty.
	attn   atomic.Bool
	isShut atomic.Bool // closed is set: NextViews stops passing copies it took already
	spare  *View       // a released copy's View, for the next one (spareView)
	// viewed counts the messages NextView returned in place from rings
	// (they bypass deliver); counting is set once AutoUnsubscribe gave a
	// count, so that NextView takes s.mu per message only then.
	viewed   atomic.Int64
	counting atomic.Bool
	// spin is how long NextMsg and NextView spin on the rings before they
	// sleep (waitFor), and sleep is how they sleep then (shmsleep.go).
	spin  shm.Spin
	sleep ringSleeper
}

// Subscribe expresses interest in subject (wildcards allowed) and calls cb
// for each message, on a goroutine owned by the subscription: one message
// at a time, in the order received. Messages wait in a pending queue bounded
// by Options.PendingMsgsLimit and PendingBytesLimit.
//
// Subscribe returns before the hub has processed the SUB; call Flush to
// wait for that when another connection is about to publish.
func (c *Conn) Subscribe(subject string, cb func(*Msg)) (*Subscription, error) {
	return c.subscribe(subject, "", kindCallback, cb, nil)
}

// QueueSubscribe is Subscribe in a queue group: each message goes to just
// one member of the group.
func (c *Conn) QueueSubscribe(subject, queue string, cb func(*Msg)) (*Subscription, error) {
	return c.subscribe(subject, queue, kindCallback, cb, nil)
}

// ChanSubscribe delivers messages to ch. The reader never blocks on ch: when
// it is full the message is dropped (see Dropped) and ErrorHandler receives
// ErrSlowConsumer once per episode, so give ch enough capacity. ch is never
// closed by the Conn.
func (c *Conn) ChanSubscribe(subject string, ch chan *Msg) (*Subscription, error) {
	return c.subscribe(subject, "", kindChan, nil, ch)
}

// ChanQueueSubscribe is ChanSubscribe in a queue group.
func (c *Conn) ChanQueueSubscribe(subject, queue string, ch chan *Msg) (*Subscription, error) {
	return c.subscribe(subject, queue, kindChan, nil, ch)
}

// SubscribeSync subscribes without a callback; receive with NextMsg.
func (c *Conn) SubscribeSync(subject string) (*Subscription, error) {
	return c.subscribe(subject, "", kindSync, nil, nil)
}

// QueueSubscribeSync is SubscribeSync in a queue group.
func (c *Conn) QueueSubscribeSync(subject, queue string) (*Subscription, error) {
	return c.subscribe(subject, queue, kindSync, nil, nil)
}

func (c *Conn) subscribe(subject, queue string, kind subKind, cb func(*Msg), ch chan *Msg) (*Subscription, error) {
	if !validSubject(subject, true) {
		return nil, fmt.Errorf("subscribe %q: %w", subject, ErrBadSubject)
	}
	if queue != "" && !validQueue(queue) {
		return nil, fmt.Errorf("subscribe %q: queue %q: %w", subject, queue, ErrBadQueue)
	}
	if kind == kindCallback && cb == nil || kind == kindChan && ch == nil {
		return nil, fmt.Errorf("subscribe %q: nil callback or channel: %w", subject, ErrBadArgument)
	}
	s := &Subscription{
		Subject:    subject,
		Queue:      queue,
		conn:       c,
		kind:       kind,
		cb:         cb,
		ch:         ch,
		kick:       make(chan struct{}, 1),
		msgLimit:   c.opts.PendingMsgsLimit,
		bytesLimit: c.opts.PendingBytesLimit,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil, ErrClosed
	}
	if c.draining {
		return nil, ErrDraining
	}
	c.ssid++
	s.sid = c.ssid
	s.sidStr = strconv.FormatUint(s.sid, 10)
	c.subs[s.sid] = s
	if kind == kindCallback {
		s.done = make(chan struct{})
		s.worker = c.spawn(func(*worker) { s.deliverLoop() })
	}
	c.sendSubLocked(s)
	c.shmMarkLocked(s)
	return s, nil
}

// deliver hands m to the subscription (from the reader). It reports true
// when m was the last message of an AutoUnsubscribe count.
func (s *Subscription) deliver(m *Msg) (last bool) {
	s.mu.Lock()
	if s.closed || s.countReachedLocked() {
		s.mu.Unlock()
		return false
	}
	s.received++
	last = s.countReachedLocked()
	accepted := false
	switch s.kind {
	case kindChan:
		select {
		case s.ch <- m:
			accepted = true
		default:
		}
	default:
		if (s.msgLimit <= 0 || len(s.q)-s.head < s.msgLimit) &&
			(s.bytesLimit <= 0 || s.pendBytes+m.size <= s.bytesLimit) {
			s.q = append(s.q, m)
			s.pendBytes += m.size
			accepted = true
			s.note()
		}
	}
	report := false
	if accepted {
		s.slow = false
	} else {
		s.dropped++
		report = !s.slow
		s.slow = true
		if report && s.kind == kindSync {
			s.slowNext = true
			s.note()
		}
	}
	s.mu.Unlock()
	if accepted && s.kind != kindChan {
		s.wake()
	}
	if report {
		s.conn.reportErr(s, ErrSlowConsumer)
	}
	return last
}

// receivedLocked is how many messages the subscription has had, for its
// AutoUnsubscribe count: those delivered or dropped, and those NextView
// took straight from a ring. Called with s.mu held.
func (s *Subscription) receivedLocked() int64 { return s.received + s.viewed.Load() }

// countView counts a message NextView is about to return in place from a
// ring. ok is false once the AutoUnsubscribe count was reached (the
// message must not be returned); last is true when this message reaches
// it. Without a count it is one atomic add.
func (s *Subscription) countView() (ok, last bool) {
	if !s.counting.Load() {
		s.viewed.Add(1)
		if !s.counting.Load() {
			return true, false
		}
		// AutoUnsubscribe came in between, and may or may not have seen
		// this view (it stores counting, then loads viewed, under s.mu):
		// settle it under the lock, the view counted.
		s.mu.Lock()
		defer s.mu.Unlock()
		n := s.receivedLocked()
		if s.closed || n > s.max {
			s.viewed.Add(-1)
			return false, false
		}
		// At the count: last, unless AutoUnsubscribe saw it and is
		// ending the subscription already.
		return true, n == s.max && !s.finishing
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.finishing || s.receivedLocked() >= s.max {
		return false, false
	}
	s.viewed.Add(1)
	return true, s.receivedLocked() >= s.max
}

// takesNoMore reports whether the subscription delivers no further
// message: closed, or its AutoUnsubscribe count reached.
func (s *Subscription) takesNoMore() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || s.countReachedLocked()
}

// countReachedLocked reports whether an AutoUnsubscribe count is set and
// reached. Called with s.mu held.
func (s *Subscription) countReachedLocked() bool {
	return s.max > 0 && s.receivedLocked() >= s.max
}

// wake nudges the delivery goroutine or a NextMsg caller.
func (s *Subscription) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
	s.sleep.kick()
}

// pop removes the oldest pending message. Called with mu held and the
// queue non-empty.
func (s *Subscription) pop() *Msg {
	m := s.q[s.head]
	s.q[s.head] = nil
	s.head++
	s.pendBytes -= m.size
	switch {
	case s.head == len(s.q):
		s.q, s.head = s.q[:0], 0
	case s.head >= 1024 && 2*s.head >= len(s.q):
		n := copy(s.q, s.q[s.head:])
		clear(s.q[n:])
		s.q, s.head = s.q[:n], 0
	}
	s.note()
	return m
}

// note updates attn after a change to the queue or the flags popQueued
// looks at; called with mu held.
func (s *Subscription) note() {
	if a := s.head < len(s.q) || s.slowNext || s.closed || s.finishing; a != s.attn.Load() {
		s.attn.Store(a)
	}
}

// deliverLoop is the goroutine of a callback subscription.
func (s *Subscription) deliverLoop() {
	defer close(s.done)
	for {
		s.mu.Lock()
		// A finishing subscription delivers what its rings held too:
		// the pump drains them after the queue may have run empty.
		for s.head == len(s.q) && !s.closed && !(s.finishing && len(s.rings) == 0) {
			s.mu.Unlock()
			<-s.kick
			s.mu.Lock()
		}
		if s.closed || s.head == len(s.q) {
			s.mu.Unlock()
			return
		}
		m := s.pop()
		s.mu.Unlock()
		s.cb(m)
	}
}

// shut stops delivery now and discards pending messages (Unsubscribe,
// Close). A callback already running finishes.
func (s *Subscription) shut() {
	s.mu.Lock()
	s.closed = true
	s.isShut.Store(true)
	clear(s.q)
	s.q, s.head, s.pendBytes = nil, 0, 0
	s.note()
	s.mu.Unlock()
	s.shmDetachAll(false)
	s.wake()
}

// finish lets the pending messages be delivered, then stops (Drain,
// AutoUnsubscribe count reached).
func (s *Subscription) finish() {
	s.mu.Lock()
	s.finishing = true
	s.note()
	s.mu.Unlock()
	s.shmDetachAll(true)
	s.wake()
}

// waitDone waits for a callback subscription's goroutine to exit, unless
// me (the caller's worker) is that goroutine.
func (s *Subscription) waitDone(ctx context.Context, me *worker) error {
	if s.kind != kindCallback || s.worker == me {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctxError("switchboard: drain "+s.Subject, ctx.Err())
	}
}

// liveLocked returns why the subscription can no longer be changed, or nil.
// Called with s.conn.mu held.
func (s *Subscription) liveLocked() error {
	if s.conn.closing {
		return ErrClosed
	}
	if s.conn.subs[s.sid] != s {
		return ErrBadSubscription
	}
	return nil
}

// Unsubscribe removes the subscription. Pending messages are discarded; a
// callback already running finishes, and no other starts after Unsubscribe
// returns. It returns ErrBadSubscription if the subscription is already
// gone and ErrClosed after Close.
func (s *Subscription) Unsubscribe() error {
	c := s.conn
	if s.kind == kindResp {
		return ErrBadSubscription // the Conn's request inbox
	}
	c.mu.Lock()
	if err := s.liveLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	delete(c.subs, s.sid)
	if !s.unsubSent {
		s.unsubSent = true
		c.sendUnsubLocked(s, 0)
	}
	c.mu.Unlock()
	s.shut()
	return nil
}

// AutoUnsubscribe makes the subscription end by itself after max messages
// in total (counting those already received). The hub is told too, so it
// stops sending; the count survives reconnects.
func (s *Subscription) AutoUnsubscribe(max int) error {
	if max <= 0 {
		return fmt.Errorf("auto-unsubscribe %d: %w", max, ErrBadArgument)
	}
	c := s.conn
	if s.kind == kindResp {
		return ErrBadSubscription
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return ErrClosed
	}
	if c.subs[s.sid] != s || s.unsubSent {
		return ErrBadSubscription
	}
	s.mu.Lock()
	s.max = int64(max)
	s.counting.Store(true)
	received, base := s.receivedLocked(), s.base
	s.mu.Unlock()
	if received >= int64(max) {
		delete(c.subs, s.sid)
		s.unsubSent = true
		c.sendUnsubLocked(s, 0)
		s.finish()
		return nil
	}
	c.sendUnsubLocked(s, int64(max)-base)
	return nil
}

// Drain unsubscribes, waits until the messages the hub had already sent
// have been received and (for a callback subscription) handed to the
// callback and the callback returned. For a SubscribeSync subscription,
// NextMsg keeps returning the pending messages, then ErrBadSubscription.
// Called from the subscription's own callback, Drain does not wait for the
// callback. A ctx deadline gives an error matching ErrTimeout; on any error
// the subscription is removed anyway.
func (s *Subscription) Drain(ctx context.Context) error {
	c := s.conn
	if s.kind == kindResp {
		return ErrBadSubscription // the Conn's request inbox
	}
	c.mu.Lock()
	if err := s.liveLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	if !s.unsubSent {
		s.unsubSent = true
		c.sendUnsubLocked(s, 0)
	}
	c.mu.Unlock()

	err := c.Flush(ctx)
	c.mu.Lock()
	if c.subs[s.sid] == s {
		delete(c.subs, s.sid)
	}
	c.mu.Unlock()
	if err != nil {
		s.shut()
		return err
	}
	s.finish()
	return s.waitDone(ctx, c.callerWorker())
}

// NextMsg returns the next message of a SubscribeSync subscription,
// waiting until one arrives or ctx ends (a deadline gives an error matching
// ErrTimeout and context.DeadlineExceeded). After messages were dropped it
// returns ErrSlowConsumer once, then goes on with the pending messages.
// Once the subscription has ended and the queue is empty it returns
// ErrBadSubscription (ErrClosed if the Conn closed).
func (s *Subscription) NextMsg(ctx context.Context) (*Msg, error) {
	if s.kind != kindSync {
		return nil, fmt.Errorf("next message: not a SubscribeSync subscription: %w", ErrBadSubscription)
	}
	for {
		if m, err := s.popQueued(ctx, "switchboard: next message"); m != nil || err != nil {
			return m, err
		}
		if s.nrings.Load() > 0 {
			s.waitRings(ctx)
			continue
		}
		select {
		case <-s.kick:
		case <-ctx.Done():
		}
	}
}

// popQueued returns the next queued message of a SubscribeSync
// subscription, or the error NextMsg and NextView end with (ErrSlowConsumer
// once after drops, the end of the subscription, ctx's error), or neither
// when the caller must wait. what prefixes a ctx error.
func (s *Subscription) popQueued(ctx context.Context, what string) (*Msg, error) {
	if !s.attn.Load() {
		// The common case of a subscription whose messages come through
		// rings, without the call (see popQueuedN).
		if err := ctx.Err(); err != nil {
			return nil, ctxError(what, err)
		}
		return nil, nil
	}
	var one [1]*Msg
	if n, err := s.popQueuedN(ctx, what, one[:]); n == 0 {
		return nil, err
	}
	return one[0], nil
}

// popQueuedN is popQueued for up to len(dst) messages, taken under one
// lock (NextViews): it returns how many it put in dst, or, when there were
// none, the error popQueued returns.
func (s *Subscription) popQueuedN(ctx context.Context, what string, dst []*Msg) (int, error) {
	if !s.attn.Load() {
		// Nothing queued and no news: the common case of a subscription
		// whose messages come through rings. Whatever is queued after
		// this load also kicks s.kick, which the caller waits on.
		if err := ctx.Err(); err != nil {
			return 0, ctxError(what, err)
		}
		return 0, nil
	}
	s.mu.Lock()
	if s.slowNext {
		s.slowNext = false
		s.note()
		s.mu.Unlock()
		return 0, ErrSlowConsumer
	}
	if s.head < len(s.q) && !s.closed {
		n := 0
		for n < len(dst) && s.head < len(s.q) {
			dst[n] = s.pop()
			n++
		}
		more := s.head < len(s.q)
		s.mu.Unlock()
		if more {
			s.wake() // another caller may be waiting
		}
		return n, nil
	}
	closed, finishing := s.closed, s.finishing
	// Drained, but rings are still being emptied into the queue (or are
	// read directly meanwhile; a ring lent out as a View is emptied at its
	// Release): not the end yet, unless the count is reached and they
	// have nothing more for us. Decided under s.mu, which every queue
	// append and ring drop takes.
	emptying := !closed && finishing && len(s.rings) > 0 && !s.countReachedLocked()
	s.mu.Unlock()
	if emptying {
		if err := ctx.Err(); err != nil {
			return 0, ctxError(what, err)
		}
		return 0, nil
	}
	if closed || finishing {
		s.wake() // pass the news on to any other caller
		if s.conn.IsClosed() {
			return 0, ErrClosed
		}
		return 0, ErrBadSubscription
	}
	if err := ctx.Err(); err != nil {
		return 0, ctxError(what, err)
	}
	return 0, nil
}

// waitRings waits until something may be queued for a SubscribeSync
// subscription that reads rings (see waitFor).
func (s *Subscription) waitRings(ctx context.Context) { s.waitFor(ctx, s.pollRings) }

// waitFor polls (poll, and the socket's kick) for the subscription's
// adaptive spin budget (shm.Spin: 2–50 µs), yielding every 64 polls,
// until poll reports it found something (if this process has a spinner
// slot free: see acquireSpin); then it sleeps until a ring has a message
// or the socket reader queued one: in sleepRings, or, when another
// goroutine sleeps for s already, with a watcher goroutine on each ring.
func (s *Subscription) waitFor(ctx context.Context, poll func() bool) {
	if poll() {
		return
	}
	select {
	case <-s.kick:
		// News (or a stale kick: NextMsg takes what pollRings queued
		// without the kick its delivery left). The caller looks again;
		// not a find for the spin's budget.
		return
	default:
	}
	if acquireSpin() {
		if s.spinSlot(poll) {
			s.spin.Found()
			return
		}
		s.spin.Slept()
	}
	if s.sleepRings(ctx) {
		return
	}
	stop := s.watchRings(ctx)
	select {
	case <-s.kick:
	case <-ctx.Done():
	}
	stop()
}

// spinSlot spins (spinFor) with the spinner slot acquireSpin gave it,
// and gives the slot back even if poll panics (NextViews calls user code
// from it).
func (s *Subscription) spinSlot(poll func() bool) bool {
	defer releaseSpin()
	return s.spinFor(s.spin.Budget(), poll)
}

// spinFor polls for up to d and reports whether poll found something (or
// the socket reader queued something).
func (s *Subscription) spinFor(d time.Duration, poll func() bool) bool {
	var deadline time.Time // read the clock only once polling did not pay off
	for i := 1; ; i++ {
		if poll() {
			return true
		}
		select {
		case <-s.kick:
			return true
		default:
		}
		if i%64 == 0 {
			now := time.Now()
			if deadline.IsZero() {
				deadline = now.Add(d)
			} else if now.After(deadline) {
				return false
			}
			runtime.Gosched()
		}
	}
}

// Pending returns the messages and bytes received but not yet delivered.
// For a channel subscription it returns len of the channel and 0 bytes.
func (s *Subscription) Pending() (msgs, bytes int) {
	if s.kind == kindChan {
		return len(s.ch), 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q) - s.head, s.pendBytes
}

// Dropped returns how many messages were dropped because the pending
// limits were exceeded (or the channel was full).
func (s *Subscription) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// SetPendingLimits changes the subscription's pending limits (see
// Options.PendingMsgsLimit); zero or negative means unlimited. It does not
// apply to channel subscriptions, which are bounded by the channel.
func (s *Subscription) SetPendingLimits(msgs, bytes int) error {
	if s.kind == kindResp {
		return ErrBadSubscription
	}
	if s.kind == kindChan {
		return fmt.Errorf("pending limits on a channel subscription: %w", ErrBadArgument)
	}
	s.mu.Lock()
	s.msgLimit, s.bytesLimit = msgs, bytes
	s.mu.Unlock()
	return nil
}

// IsValid reports whether the subscription is still active.
func (s *Subscription) IsValid() bool {
	c := s.conn
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.subs[s.sid] == s
}
