package switchboard

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A worker is one goroutine the Conn started: the reader, the flusher, the
// event loop, or a subscription's delivery loop. Each counts once in
// Conn.wg. Close waits on wg; when Close (or Drain) is called from a worker
// (a callback or handler), that worker releases its own count first, since
// it cannot exit while it waits.
type worker struct {
	c        *Conn
	gid      atomic.Uint64 // goroutine id, set when the goroutine starts
	released atomic.Bool
}

// release removes the worker from Conn.wg, once.
func (w *worker) release() {
	if w.released.CompareAndSwap(false, true) {
		w.c.wg.Done()
	}
}

// spawn starts fn on a new worker goroutine. Callers make sure Close has
// not started waiting (they hold mu with closing unset, or run in Connect).
func (c *Conn) spawn(fn func(w *worker)) *worker {
	w := &worker{c: c}
	c.wg.Add(1)
	c.workersMu.Lock()
	c.workers[w] = struct{}{}
	c.workersMu.Unlock()
	go func() {
		w.gid.Store(goid())
		defer func() {
			c.workersMu.Lock()
			delete(c.workers, w)
			c.workersMu.Unlock()
			w.release()
		}()
		fn(w)
	}()
	return w
}

// callerWorker returns the worker running the calling goroutine, or nil.
func (c *Conn) callerWorker() *worker {
	me := goid()
	c.workersMu.Lock()
	defer c.workersMu.Unlock()
	for w := range c.workers {
		if w.gid.Load() == me {
			return w
		}
	}
	return nil
}

// goid returns the calling goroutine's id, parsed from the first line of
// its stack trace ("goroutine 42 [running]:"). It costs about a
// microsecond and is used only when starting goroutines and in Close and
// Drain, never per message.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		return 0
	}
	var id uint64
	for _, ch := range b[len(prefix):] {
		if ch < '0' || ch > '9' {
			break
		}
		id = id*10 + uint64(ch-'0')
	}
	return id
}

// eventQueue runs handler calls (ErrorHandler, DisconnectHandler,
// ReconnectHandler, ClosedHandler) one at a time, in order, on the Conn's
// event goroutine, so that no handler ever runs on the reader or blocks it.
// The queue is unbounded; slow-consumer errors are reported once per
// episode, so it stays small unless a handler blocks.
type eventQueue struct {
	mu     sync.Mutex
	q      []func()
	closed bool
	kick   chan struct{} // cap 1
}

// push queues fn; it reports false once the queue is closed.
func (e *eventQueue) push(fn func()) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false
	}
	e.q = append(e.q, fn)
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
	return true
}

// close makes the event goroutine exit once the queue is empty.
func (e *eventQueue) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// eventLoop is the event goroutine.
func (c *Conn) eventLoop() {
	e := &c.events
	for {
		e.mu.Lock()
		q, closed := e.q, e.closed
		e.q = nil
		e.mu.Unlock()
		for _, fn := range q {
			fn()
		}
		if len(q) > 0 {
			continue
		}
		if closed {
			return
		}
		<-e.kick
	}
}

// reportErr logs err and hands it to Options.ErrorHandler, if any.
func (c *Conn) reportErr(s *Subscription, err error) {
	c.lastErr.Store(&err)
	if s != nil {
		c.opts.Logger.Warn("switchboard: async error", "subject", s.Subject, "err", err)
	} else {
		c.opts.Logger.Warn("switchboard: async error", "err", err)
	}
	if h := c.opts.ErrorHandler; h != nil {
		c.events.push(func() { h(c, s, err) })
	}
}
