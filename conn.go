package switchboard

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/internal/paths"
	"switchboard/internal/protocol"
)

// Connection states, stored in Conn.status (written under Conn.wmu).
const (
	statusConnected    int32 = iota + 1 // a live socket; frames are written
	statusReconnecting                  // lost; publishes are buffered, control frames wait for resume
	statusClosed                        // Close started; nothing is accepted
)

// Conn is a client connection to a Switchboard hub (or any NATS server).
// All its methods are safe for concurrent use; see the package doc for the
// ordering and goroutine contract.
type Conn struct {
	opts    Options
	url     string      // as given (or the default), for ConnectedURL and errors
	target  target      // what url names: where to dial, and whether TLS is required
	tlsConf *tls.Config // for TLS handshakes: Options.TLSConfig or the default, ServerName filled

	// mu guards the fields below it. Lock order: mu, then wmu, then a
	// Subscription's mu; never the reverse. The reader takes mu only for
	// short map lookups (read lock).
	mu       sync.RWMutex
	subs     map[uint64]*Subscription // live subscriptions by SID
	ssid     uint64                   // last SID handed out
	info     protocol.Info            // latest INFO from the hub
	draining bool                     // Drain started: no new subscriptions
	closing  bool                     // Close started
	resp     *respMux                 // request inbox, created by the first Request

	// wmu guards the outbound side: the buffer, the socket used for
	// writing, the PONG waiters and the state. wcond (on wmu) is broadcast
	// when a write finishes or the state changes.
	wmu      sync.Mutex
	wcond    sync.Cond
	out      []byte       // frames waiting to be written (the reconnect buffer while disconnected)
	spare    []byte       // the other buffer, swapped with out for each write
	flushing bool         // some goroutine owns the socket and is writing
	nc       net.Conn     // nil while disconnected
	writeErr error        // why the writer dropped the socket, for the disconnect cause
	pongs    []chan error // one per PING in flight, in order; nil entries are keep-alive PINGs
	pingsOut int          // keep-alive PINGs without a PONG
	outMsgs  uint64
	outBytes uint64

	// Owned by the reader goroutine (set before it starts).
	upSince time.Time // when the current connection's handshake completed
	flaps   int       // connections in a row that were lost soon after they came up

	lastErr    atomic.Pointer[error] // the last asynchronous error, for LastError
	status     atomic.Int32          // statusConnected etc.; written under wmu
	maxPayload atomic.Int64          // the hub's max_payload
	inMsgs     atomic.Uint64
	inBytes    atomic.Uint64
	reconnects atomic.Uint64

	shm *shmState // nil unless shared memory may be used (unix socket, not NoSharedMemory)

	kick      chan struct{}      // cap 1: wakes the flusher
	closedCh  chan struct{}      // closed when Close starts
	closeDone chan struct{}      // closed when Close has waited for every goroutine
	ctx       context.Context    // cancelled when Close starts; bounds reconnect dials
	cancel    context.CancelFunc //

	wg        sync.WaitGroup // every goroutine the Conn started (see worker)
	workersMu sync.Mutex
	workers   map[*worker]struct{}
	events    eventQueue

	// Owned by the reader goroutine.
	parser     *protocol.Parser
	dispatchFn func(*protocol.Frame) error
	rServerErr error // last -ERR that is not a permissions violation: the likely disconnect cause
}

// Stats are a Conn's counters since Connect. Bytes count message payloads
// (headers plus data), not protocol overhead; what the Conn writes into
// shared-memory rings counts whole frames (subject and reply included),
// once per ring it went into.
type Stats struct {
	InMsgs     uint64
	InBytes    uint64
	OutMsgs    uint64
	OutBytes   uint64
	Reconnects uint64
}

// Connect dials the hub at url, performs the handshake (INFO, TLS when
// used, CONNECT, PING/PONG) and returns a connected Conn. url is
// "unix:///abs/path", "tcp://host:port", "nats://host:port",
// "tls://host:port" or "host:port"; "" means the default (see ParseURL). A
// nil opts means all defaults. See Options.TLSConfig for when the
// connection uses TLS.
//
// Connect tries once; ctx and Options.DialTimeout bound the attempt. Once
// connected, a lost connection is re-established in the background (see
// Options.NoReconnect). Authorization failures match ErrAuthorization;
// TLS failures (including certificate verification) match ErrTLS.
func Connect(ctx context.Context, url string, opts *Options) (*Conn, error) {
	if url == "" {
		url = paths.DefaultURL()
	}
	tgt, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if tgt.network == "unix" && o.TLSConfig != nil {
		return nil, fmt.Errorf("switchboard: connect %s: %w: %s", url, ErrTLS, errTLSUnix)
	}
	c := &Conn{
		opts:      o,
		url:       url,
		target:    tgt,
		tlsConf:   tlsConfigFor(o.TLSConfig, tgt.host),
		subs:      make(map[uint64]*Subscription),
		kick:      make(chan struct{}, 1),
		closedCh:  make(chan struct{}),
		closeDone: make(chan struct{}),
		workers:   make(map[*worker]struct{}),
	}
	c.wcond.L = &c.wmu
	c.events.kick = make(chan struct{}, 1)
	if tgt.network == "unix" && !o.NoSharedMemory {
		c.shm = &shmState{hello: make(chan struct{})}
	}
	c.dispatchFn = c.dispatch

	ss, err := c.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("switchboard: connect %s: %w", url, err)
	}
	info := ss.info
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.info = *info
	c.setMaxPayload(info.MaxPayload)
	c.nc = ss.nc
	c.parser = ss.p
	c.status.Store(statusConnected)
	c.lateErrors(ss)
	c.spawn(func(*worker) { c.eventLoop() })
	c.spawn(func(*worker) { c.flushLoop() })
	c.upSince = time.Now()
	c.spawn(func(w *worker) { c.readLoop(w, ss.nc, ss.p) })
	c.shmStart(info)
	c.opts.Logger.Info("switchboard: connected", "url", url, "server", info.ServerName, "version", info.Version)
	return c, nil
}

// IsConnected reports whether the Conn has a live connection to the hub.
func (c *Conn) IsConnected() bool { return c.status.Load() == statusConnected }

// LastError returns the last asynchronous error the Conn saw (the errors
// Options.ErrorHandler receives), or nil. A -ERR the hub sends in answer
// to a publish or subscribe is recorded before any later PONG is
// processed, so after Flush returns, LastError includes every error the
// hub reported for what was sent before the Flush:
//
//	nc.Publish("orders.new", data)
//	if err := nc.Flush(ctx); err == nil && errors.Is(nc.LastError(), switchboard.ErrPermission) {
//		// the hub refused the publish
//	}
func (c *Conn) LastError() error {
	if p := c.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// IsClosed reports whether Close (or Drain, or giving up reconnecting) has
// closed the Conn.
func (c *Conn) IsClosed() bool { return c.status.Load() == statusClosed }

// ConnectedURL returns the URL of the hub while connected, "" otherwise.
func (c *Conn) ConnectedURL() string {
	if !c.IsConnected() {
		return ""
	}
	return c.url
}

// MaxPayload returns the largest message (header plus data) the hub
// accepts, from its latest INFO.
func (c *Conn) MaxPayload() int64 { return c.maxPayload.Load() }

// Stats returns a snapshot of the Conn's counters.
func (c *Conn) Stats() Stats {
	c.wmu.Lock()
	s := Stats{OutMsgs: c.outMsgs, OutBytes: c.outBytes}
	c.wmu.Unlock()
	s.InMsgs = c.inMsgs.Load()
	s.InBytes = c.inBytes.Load()
	s.Reconnects = c.reconnects.Load()
	if c.shm != nil {
		m, b := c.shm.sent()
		s.OutMsgs += m
		s.OutBytes += b
	}
	return s
}

func (c *Conn) setMaxPayload(n int64) {
	if n <= 0 {
		n = protocol.DefaultMaxPayload
	}
	c.maxPayload.Store(n)
}

// Close closes the connection: buffered publishes are written (bounded by
// Options.DialTimeout), pending Requests and Flushes return ErrClosed,
// messages not yet handed to callbacks are discarded, and ClosedHandler
// runs. Close waits until every goroutine the Conn started has exited,
// including callbacks that are running; called from a callback or handler
// it does not wait for that one (which could not finish), and the callback's
// goroutine exits when it returns. Close is idempotent and always returns
// nil; later calls wait for the first to finish (except from a callback).
func (c *Conn) Close() error {
	c.close(nil, nil, true)
	return nil
}

// close shuts the Conn down. self is the calling worker when an owned
// goroutine (the reader giving up) closes; cause is logged. With wait
// unset (Drain out of time) it does not wait for the goroutines; a
// helper closes closeDone once they are gone, and Close waits for that.
func (c *Conn) close(self *worker, cause error, wait bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		if self == nil && c.callerWorker() == nil {
			<-c.closeDone
		}
		return
	}
	c.closing = true
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	clear(c.subs)
	c.mu.Unlock()
	c.cancel()
	c.shmLost()

	c.wmu.Lock()
	was := c.status.Load()
	c.status.Store(statusClosed)
	close(c.closedCh)
	nc := c.nc
	c.nc = nil
	var buf []byte
	if nc != nil && was == statusConnected {
		// Bound the write in progress (if any) and our final one.
		_ = nc.SetWriteDeadline(time.Now().Add(c.opts.DialTimeout))
		for c.flushing {
			c.wcond.Wait()
		}
		buf = c.out
	}
	c.out, c.spare = nil, nil
	for _, ch := range c.pongs {
		if ch != nil {
			ch <- ErrClosed
		}
	}
	c.pongs = nil
	c.wcond.Broadcast()
	c.wmu.Unlock()
	if nc != nil {
		if len(buf) > 0 {
			_, _ = nc.Write(buf)
		}
		_ = nc.Close()
	}
	for _, s := range subs {
		s.shut()
	}
	if cause != nil {
		c.opts.Logger.Warn("switchboard: closed", "url", c.url, "err", cause)
	} else {
		c.opts.Logger.Info("switchboard: closed", "url", c.url)
	}
	if h := c.opts.ClosedHandler; h != nil {
		c.events.push(func() { h(c) })
	}
	c.events.close()

	if self == nil {
		self = c.callerWorker()
	}
	if self != nil {
		self.release()
	}
	if !wait {
		go func() {
			c.wg.Wait()
			close(c.closeDone)
		}()
		return
	}
	c.wg.Wait()
	close(c.closeDone)
}

// Drain gracefully closes the Conn: it stops new subscriptions
// (ErrDraining), unsubscribes every subscription, waits for the messages
// the hub had already sent to be handed to their callbacks and for those
// callbacks to return, flushes publishes (including those made by the
// callbacks), and closes. Publishing is allowed until the close. Requests
// made during Drain fail with ErrDraining; Requests already waiting for a
// reply when Drain starts lose their inbox with the other subscriptions
// and end with ErrClosed unless the reply was already on its way.
//
// If ctx ends first, Drain closes the Conn anyway, without waiting for
// callbacks still running (a later Close waits for them), and returns an
// error matching ctx's (and ErrTimeout for a deadline). Called from a
// callback, Drain does not wait for that callback's subscription.
func (c *Conn) Drain(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.draining {
		c.mu.Unlock()
		return ErrDraining
	}
	c.draining = true
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		if !s.unsubSent {
			s.unsubSent = true
			c.sendUnsubLocked(s, 0)
		}
		subs = append(subs, s)
	}
	c.mu.Unlock()

	// After the PONG, everything the hub sent before our UNSUBs was read
	// and queued.
	err := c.Flush(ctx)
	if err == nil {
		c.mu.Lock()
		for _, s := range subs {
			if c.subs[s.sid] == s {
				delete(c.subs, s.sid)
			}
		}
		c.mu.Unlock()
		for _, s := range subs {
			s.finish()
		}
		me := c.callerWorker()
		for _, s := range subs {
			if err = s.waitDone(ctx, me); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = c.Flush(ctx)
	}
	if err != nil && ctx.Err() != nil {
		c.close(nil, nil, false)
		return ctxError("switchboard: drain", ctx.Err())
	}
	c.Close()
	return err
}
