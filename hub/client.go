package hub

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"switchboard/auth"
	"switchboard/internal/protocol"
	"switchboard/internal/subject"
)

// Read buffer bounds: a connection starts small so that thousands of idle
// connections cost little, and grows while reads fill the buffer.
const (
	minReadBuf = 512
	maxReadBuf = 64 << 10 // measured: 256 KiB halved 64 KiB pub→sub throughput
	// shrinkAfter is how many short reads in a row shrink the buffers.
	shrinkAfter = 4
	// unixSockBuf is the socket buffer size asked for on unix connections.
	unixSockBuf = 2 << 20
)

var (
	errShutdown     = errors.New("hub shutting down")
	errSlowConsumer = errors.New("slow consumer")
	errStale        = errors.New("stale connection")
)

// client is one connection's session state.
type client struct {
	h         *Hub
	id        uint64
	nc        net.Conn        // what frames are read from and written to
	raw       net.Conn        // the accepted connection: nc, or what TLS runs over
	tls       *tls.Conn       // nc when the listener requires TLS, else nil
	tlsVerify bool            // the TLS listener requires client certificates
	rc        syscall.RawConn // nil when the transport has no file descriptor (TLS, WebSocket)
	log       *slog.Logger

	// Identity and permissions, set by admit and authenticate on the
	// reader goroutine before the first SUB; read-only afterwards, so
	// deliveries may read them without locking.
	base       *auth.Identity // what the transport established
	who        *auth.Identity // base plus verified credentials
	grant      *auth.Grant
	restricted bool          // grant is checked on every PUB and SUB
	respTTL    time.Duration // > 0: may answer requests it receives (see noteResponseLocked)
	principal  string        // counted against a per-principal connection limit
	key        string        // who.Key(): the principal, for the response rules
	maxSubs    int           // 0 = no limit

	// Owned by the reader goroutine.
	parser     *protocol.Parser
	opts       protocol.Connect
	gotConn    bool
	pcd        map[*client]struct{} // connections this read delivered to, flushed at its end
	lastDst    *client              // the last connection added to pcd, to skip repeated map writes
	lastSubj   []byte               // the last publish subject found valid
	authed     bool                 // CONNECT was accepted
	subscribed bool                 // a SUB was accepted once: the grant is fixed from then on
	lastPub    []byte               // the last subject a restricted client was allowed to publish to
	lastPubOK  bool
	// The last delivery check on a filtered subscription (see deliverable).
	filtGrant    *auth.Grant
	filtSubj     []byte
	filtOK       bool
	auditAt      time.Time // start of the current audit log budget
	auditLeft    int
	auditDropped int

	// echo is set at CONNECT and read only by the reader goroutine.
	echo bool

	// Shared memory (shm.go), owned by the reader goroutine.
	maxPayload int                 // the largest message it may publish
	shmOn      bool                // said $SB.SHM.HELLO: may be offered rings
	shmSeen    map[string]struct{} // patterns it was offered a ring for (or refused)
	// A forwarder's stand-in (shmfwd.go): origin is the publisher (c
	// itself otherwise); fwd the ring whose messages it routes.
	origin    *client
	fwd       *ring
	fwdPeer   *shmPeer
	fwdSeq    uint64
	fwdOffers []*subscription // offers to make once the message is routed

	mu        sync.Mutex // leaf lock: guards everything below
	pidfile   *os.File   // the peer's pidfd while watched (pidwatch_linux.go); closed with the connection
	headers   bool       // the peer understands HMSG (set at CONNECT)
	subs      map[string]*subscription
	out       []byte   // frames waiting to be written
	spare     []byte   // the buffer the writer last used, reused for out
	head      int      // leading bytes of out that finish a partly written frame
	marks     []fdMark // frames in out that carry file descriptors (fdpass.go)
	writing   bool     // a flush (inline or the writer goroutine) owns the socket's write side
	closing   bool     // no more deliveries; close once out is written
	progress  bool     // the last write to the socket took some bytes: the peer is reading
	closed    bool
	done      chan struct{} // closed when the connection is closed
	pingsOut  int
	pingT     *time.Timer
	wg        sync.WaitGroup       // writer goroutines
	resp      map[string]time.Time // reply subjects it may answer once, until the time given
	respSwept time.Time            // when resp was last swept of expired entries
}

// subscription is one SUB of one client.
type subscription struct {
	c       *client
	subject string
	queue   string
	sid     []byte

	// Guarded by c.mu.
	max       int64 // auto-unsubscribe after this many deliveries; 0 = never
	delivered int64
	gone      bool // removed from c.subs: deliveries already under way are dropped

	// filter is set when the pattern also covers subjects the policy denies
	// this subscriber: each delivery is checked (see deliverable).
	filter bool

	// shm marks a shared-memory subscription ($SB.SHM.SUB); block asks
	// its publishers to wait for it rather than overwrite what it has
	// not read (set before shm, under the broker's lock).
	shm   atomic.Bool
	block bool
}

func newClient(h *Hub, nc net.Conn, l net.Listener) *client {
	c := &client{
		h:   h,
		id:  h.nextID.Add(1),
		nc:  nc,
		raw: nc,
		// Until CONNECT is accepted: short lines, no payloads (see admit.go).
		parser: protocol.NewParser(protocol.ServerSide, protocol.Limits{MaxControlLine: min(h.cfg.MaxControlLine, preAuthLine), MaxPayload: 1}),
		pcd:    make(map[*client]struct{}),
		subs:   make(map[string]*subscription),
		echo:   true,
		done:   make(chan struct{}),
	}
	c.origin = c
	if uc, ok := nc.(*net.UnixConn); ok {
		// Unix sockets do not autotune their buffers as TCP does; the
		// default (~200 KiB) limits streaming throughput. The kernel caps
		// this at net.core.wmem_max / rmem_max.
		uc.SetWriteBuffer(unixSockBuf)
		uc.SetReadBuffer(unixSockBuf)
	}
	if tl, ok := l.(*tlsListener); ok {
		c.tls = tls.Server(nc, tl.cfg)
		c.tlsVerify = tl.cfg.ClientAuth == tls.RequireAndVerifyClientCert
		c.nc = c.tls
	} else if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	c.log = h.log.With("cid", c.id, "transport", l.Addr().Network(), "remote", remoteAddr(nc))
	return c
}

// run is the reader goroutine: it sends INFO, then reads, parses and routes
// until the connection ends, and finally cleans up.
func (c *client) run() {
	c.log.Debug("connected")
	err := c.admit()
	if err == nil {
		c.mu.Lock()
		c.pingT = time.AfterFunc(c.h.cfg.PingInterval, c.pingTimer)
		c.mu.Unlock()
		err = c.readLoop()
		if c.authTimedOut(err) {
			c.h.stats.authFailures.Add(1)
			c.h.auditConn("authentication timeout: no CONNECT", "cid", c.id, "who", c.who, "transport", c.who.Transport, "remote", remoteAddr(c.raw), "timeout", c.h.cfg.AuthTimeout)
			c.sendErrAndClose("Authentication Timeout")
			err = errAuthTimeout
		}
	}
	c.mu.Lock()
	if c.pingT != nil {
		c.pingT.Stop()
	}
	closing := c.closing
	c.mu.Unlock()
	if closing {
		// An -ERR is on its way (protocol error): give it a moment to be
		// written before the connection is torn down.
		select {
		case <-c.done:
		case <-time.After(min(c.h.cfg.WriteDeadline, time.Second)):
		}
	}
	c.closeNow(err)
	c.wg.Wait()
	c.cleanup()
	c.h.removeClient(c)
	c.log.Debug("disconnected", "reason", err)
}

func (c *client) readLoop() error {
	buf := make([]byte, minReadBuf)
	shortReads := 0
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			c.h.stats.inBytes.Add(uint64(n))
			perr := c.parser.Parse(buf[:n], c.handle)
			c.flushTouched()
			if perr != nil {
				return c.protocolError(perr)
			}
			switch {
			case n == len(buf):
				shortReads = 0
				if len(buf) < maxReadBuf && (c.authed || len(buf) < preAuthReadBuf) {
					buf = make([]byte, 2*len(buf))
				}
			case n < len(buf)/4:
				// Several short reads in a row: the stream slowed down.
				// Give back what a burst grew, so quiet connections stay
				// small (one short read ends every request of a
				// request/reply exchange, so one is not enough).
				shortReads++
				if shortReads >= shrinkAfter {
					shortReads = 0
					c.parser.Shrink()
					if len(buf) > minReadBuf {
						buf = make([]byte, max(minReadBuf, len(buf)/4))
					}
				}
			default:
				shortReads = 0
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// protocolError reports err to the peer, if it is one the peer caused, and
// returns the reason the connection ends.
func (c *client) protocolError(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) && !c.authed && !c.gotConn {
		// Whatever a peer sends before authenticating is refused alike.
		return c.refuse("protocol error before CONNECT", pe.Msg)
	}
	if errors.As(err, &pe) {
		c.h.stats.protoErrors.Add(1)
		c.log.Info("protocol error", "err", pe.Msg, "detail", pe.Detail)
		c.sendErrAndClose(pe.Msg)
		return err
	}
	return err
}

// handle processes one frame from the peer. It runs on the reader goroutine.
func (c *client) handle(f *protocol.Frame) error {
	if !c.authed && f.Op != protocol.OpConnect && f.Op != protocol.OpPing && f.Op != protocol.OpPong {
		return c.preAuth(f)
	}
	switch f.Op {
	case protocol.OpPub, protocol.OpHPub:
		return c.processPub(f)
	case protocol.OpPing:
		c.enqueueString(protocol.Pong)
		c.pcd[c] = struct{}{}
		return nil
	case protocol.OpPong:
		c.mu.Lock()
		c.pingsOut = 0
		c.mu.Unlock()
		return nil
	case protocol.OpSub:
		return c.processSub(f)
	case protocol.OpUnsub:
		return c.processUnsub(f)
	case protocol.OpConnect:
		return c.processConnect(f)
	}
	return &protocol.Error{Msg: "Unknown Protocol Operation", Detail: "unexpected op"}
}

func (c *client) ok() {
	if c.opts.Verbose {
		c.enqueueString(protocol.OK)
		c.pcd[c] = struct{}{}
	}
}

// softErr sends -ERR without closing the connection.
func (c *client) softErr(msg string) {
	c.enqueue(protocol.AppendErr(nil, msg))
	c.pcd[c] = struct{}{}
}

func (c *client) processConnect(f *protocol.Frame) error {
	var opts protocol.Connect
	opts.Echo = true
	if err := json.Unmarshal(f.Payload, &opts); err != nil {
		return &protocol.Error{Msg: "Invalid Connect Options", Detail: err.Error()}
	}
	// Options (and credentials) may change only before the first SUB, so
	// that deliveries (which read the grant without locking) never see them
	// change under way: even after an UNSUB, a publisher may still be
	// delivering to an old subscription.
	if c.subscribed {
		c.softErr("CONNECT After SUB Ignored")
		return nil
	}
	if !c.gotConn {
		// Credentials count at the first CONNECT only.
		if err := c.authenticate(&opts); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.headers = opts.Headers
	c.mu.Unlock()
	c.opts = opts
	c.gotConn = true
	c.echo = opts.Echo
	c.log.Debug("CONNECT", "name", opts.Name, "lang", opts.Lang, "version", opts.Version, "verbose", opts.Verbose, "headers", opts.Headers, "echo", opts.Echo)
	c.ok()
	return nil
}

func (c *client) processSub(f *protocol.Frame) error {
	if !subject.ValidSubscribe(f.Subject) {
		c.softErr("Invalid Subject")
		return nil
	}
	if f.Queue != nil && !subject.ValidQueue(f.Queue) {
		c.softErr("Invalid Queue Name")
		return nil
	}
	filter := false
	if c.restricted {
		var ok bool
		if ok, filter = c.maySubscribe(f.Subject, f.Queue); !ok {
			return nil
		}
	}
	s := &subscription{c: c, subject: string(f.Subject), queue: string(f.Queue), sid: append([]byte(nil), f.SID...), filter: filter}
	c.subscribed = true
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	// Re-using a sid replaces the subscription.
	old := c.subs[string(s.sid)]
	if old != nil {
		old.gone = true
		delete(c.subs, string(s.sid))
	}
	full := c.maxSubs > 0 && len(c.subs) >= c.maxSubs
	if !full {
		c.subs[string(s.sid)] = s
	}
	c.mu.Unlock()
	if old != nil {
		c.h.removeSub(old)
	}
	if full {
		c.softErr("Maximum Subscriptions Exceeded")
		return nil
	}
	if err := c.h.subs.Insert(s.subject, s.queue, s); err != nil {
		c.mu.Lock()
		delete(c.subs, string(s.sid))
		c.mu.Unlock()
		c.softErr("Invalid Subject")
		return nil
	}
	if c.h.shm != nil {
		c.h.shm.subAdded(s)
	}
	c.ok()
	return nil
}

func (c *client) processUnsub(f *protocol.Frame) error {
	c.mu.Lock()
	s, ok := c.subs[string(f.SID)]
	if ok {
		if f.Max > 0 && s.delivered < f.Max {
			s.max = f.Max
			ok = false
		} else {
			s.gone = true
			delete(c.subs, string(f.SID))
		}
	}
	c.mu.Unlock()
	if ok {
		c.h.removeSub(s)
	}
	c.ok()
	return nil
}

func (c *client) processPub(f *protocol.Frame) error {
	// A stream usually repeats its subject: validate only when it changes.
	if !bytes.Equal(f.Subject, c.lastSubj) {
		if !subject.ValidPublish(f.Subject) {
			c.softErr("Invalid Publish Subject")
			return nil
		}
		c.lastSubj = append(c.lastSubj[:0], f.Subject...)
	}
	if f.Reply != nil && !subject.ValidPublish(f.Reply) {
		c.softErr("Invalid Reply Subject")
		return nil
	}
	if verb, ok := bytes.CutPrefix(f.Subject, []byte(shmPrefix)); ok && c.h.shm != nil {
		c.shmRequest(string(verb), f.Reply, f.Payload)
		return nil
	}
	if c.restricted && !c.mayPublish(f.Subject, f.Reply) {
		return nil
	}
	c.h.stats.inMsgs.Add(1)
	c.ok() // before the message, as nats-server orders them
	if verb, ok := bytes.CutPrefix(f.Subject, []byte(queuePrefix)); ok {
		c.queueRequest(string(verb), f.Reply, f.Payload[f.HeaderLen:])
		return nil
	}
	c.route(f.Subject, f.Reply, f.HeaderLen, f.Payload)
	if m := c.h.queues; m != nil && !bytes.HasPrefix(f.Subject, []byte("$SB.")) {
		if q := m.Bound(f.Subject); q != nil {
			c.queuePublish(q, f)
		}
	}
	return nil
}

// pingTimer runs on its own goroutine every PingInterval.
func (c *client) pingTimer() {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.pingsOut++
	stale := c.pingsOut > c.h.cfg.MaxPingsOut
	c.mu.Unlock()
	if stale {
		c.log.Info("stale connection: pings unanswered", "pings", c.h.cfg.MaxPingsOut)
		c.sendErrAndClose("Stale Connection")
		return
	}
	c.enqueueString(protocol.Ping)
	c.flushInline()
	c.mu.Lock()
	if !c.closing {
		c.pingT.Reset(c.h.cfg.PingInterval)
	}
	c.mu.Unlock()
}

// cleanup removes the client's subscriptions from the hub.
func (c *client) cleanup() {
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	for _, s := range subs {
		s.gone = true
	}
	c.out, c.spare = nil, nil
	c.dropMarksLocked(0)
	c.mu.Unlock()
	if c.h.shm != nil {
		c.h.shm.clientGone(c)
	}
	for _, s := range subs {
		c.h.removeSub(s)
	}
	if c.principal != "" {
		c.h.removePrincipalConn(c.principal)
	}
}

// removeSub takes s out of the routing table and the shm broker.
func (h *Hub) removeSub(s *subscription) {
	h.subs.Remove(s.subject, s.queue, s)
	if h.shm != nil {
		h.shm.subRemoved(s)
	}
}
