package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"switchboard/internal/protocol"
	"switchboard/internal/subject"
)

// Read buffer bounds: a connection starts small so that thousands of idle
// connections cost little, and grows while reads fill the buffer.
const (
	minReadBuf = 512
	maxReadBuf = 64 << 10
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
	h   *Hub
	id  uint64
	nc  net.Conn
	rc  syscall.RawConn // nil when the transport has no file descriptor (TLS, WebSocket)
	log *slog.Logger

	// Owned by the reader goroutine.
	parser   *protocol.Parser
	opts     protocol.Connect
	gotConn  bool
	pcd      map[*client]struct{} // connections this read delivered to, flushed at its end
	lastDst  *client              // the last connection added to pcd, to skip repeated map writes
	lastSubj []byte               // the last publish subject found valid

	// Set at CONNECT by the reader, read by other readers delivering to us.
	// Written before the first SUB is inserted, so readers of subscriptions
	// always see the final values.
	headers bool
	echo    bool

	mu       sync.Mutex // leaf lock: guards everything below
	subs     map[string]*subscription
	out      []byte // frames waiting to be written
	spare    []byte // the buffer the writer last used, reused for out
	head     int    // leading bytes of out that finish a partly written frame
	writing  bool   // a flush (inline or the writer goroutine) owns the socket's write side
	closing  bool   // no more deliveries; close once out is written
	closed   bool
	errMsg   string // -ERR sent just before closing, if any
	pingsOut int
	lastIn   time.Time
	wg       sync.WaitGroup // writer goroutines
	pingT    *time.Timer
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
}

func newClient(h *Hub, nc net.Conn, l net.Listener) *client {
	c := &client{
		h:      h,
		id:     h.nextID.Add(1),
		nc:     nc,
		parser: protocol.NewParser(protocol.ServerSide, protocol.Limits{MaxControlLine: h.cfg.MaxControlLine, MaxPayload: h.cfg.MaxPayload}),
		pcd:    make(map[*client]struct{}),
		subs:   make(map[string]*subscription),
		echo:   true,
	}
	if uc, ok := nc.(*net.UnixConn); ok {
		// Unix sockets do not autotune their buffers as TCP does; the
		// default (~200 KiB) limits streaming throughput. The kernel caps
		// this at net.core.wmem_max / rmem_max.
		uc.SetWriteBuffer(unixSockBuf)
		uc.SetReadBuffer(unixSockBuf)
	}
	if sc, ok := nc.(syscall.Conn); ok {
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
	c.mu.Lock()
	c.out = append(c.out, c.h.info(c)...)
	c.mu.Unlock()
	c.flushInline()
	c.pingT = time.AfterFunc(c.h.cfg.PingInterval, c.pingTimer)

	err := c.readLoop()
	c.pingT.Stop()
	c.closeNow(err)
	c.wg.Wait()
	c.cleanup()
	c.h.removeClient(c)
	c.log.Debug("disconnected", "reason", err)
}

func (c *client) readLoop() error {
	buf := make([]byte, minReadBuf)
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
			case n == len(buf) && len(buf) < maxReadBuf:
				buf = make([]byte, 2*len(buf))
			case n < len(buf)/4 && len(buf) > minReadBuf:
				buf = make([]byte, len(buf)/2)
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
	if c.gotConn {
		// A second CONNECT may change options only before subscribing, so
		// deliveries always see final values.
		c.mu.Lock()
		n := len(c.subs)
		c.mu.Unlock()
		if n > 0 {
			c.softErr("Repeated CONNECT Ignored")
			return nil
		}
	}
	c.opts = opts
	c.gotConn = true
	c.headers = opts.Headers
	c.echo = opts.Echo
	if opts.Name != "" {
		c.log = c.log.With("name", opts.Name)
	}
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
	s := &subscription{c: c, subject: string(f.Subject), queue: string(f.Queue), sid: append([]byte(nil), f.SID...)}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	if old, ok := c.subs[string(s.sid)]; ok {
		// Re-using a sid replaces the subscription.
		c.h.subs.Remove(old.subject, old.queue, old)
		delete(c.subs, string(s.sid))
	}
	if max := c.h.cfg.MaxSubscriptions; max > 0 && len(c.subs) >= max {
		c.mu.Unlock()
		c.softErr("Maximum Subscriptions Exceeded")
		return nil
	}
	c.subs[string(s.sid)] = s
	c.mu.Unlock()
	if err := c.h.subs.Insert(s.subject, s.queue, s); err != nil {
		c.mu.Lock()
		delete(c.subs, string(s.sid))
		c.mu.Unlock()
		c.softErr("Invalid Subject")
		return nil
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
			delete(c.subs, string(f.SID))
		}
	}
	c.mu.Unlock()
	if ok {
		c.h.subs.Remove(s.subject, s.queue, s)
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
	c.h.stats.inMsgs.Add(1)
	c.route(f.Subject, f.Reply, f.HeaderLen, f.Payload)
	c.ok()
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
	c.pingT.Reset(c.h.cfg.PingInterval)
}

// cleanup removes the client's subscriptions from the hub.
func (c *client) cleanup() {
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	c.out, c.spare = nil, nil
	c.mu.Unlock()
	for _, s := range subs {
		c.h.subs.Remove(s.subject, s.queue, s)
	}
}
