package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/internal/protocol"
	"switchboard/internal/subject"
	"switchboard/queue"
)

// Version is the hub's version, reported in INFO.
const Version = "0.1.0"

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("hub: server closed")

// Hub routes messages between connected clients. Create it with New.
type Hub struct {
	cfg       Config
	log       *slog.Logger
	audit     *slog.Logger // log.With("audit", true): denials and failed authentications
	connAudit auditLimiter // budget of audit lines about refused connections
	id        string
	subs      *subject.Sublist[*subscription]
	shm       *broker        // nil when Config.NoSharedMemory
	queues    *queue.Manager // nil without Config.DataDir

	closeQueues sync.Once

	nextID atomic.Uint64
	stats  counters

	mu         sync.Mutex // guards the fields below; see the lock order in the package doc
	listeners  map[net.Listener]struct{}
	clients    map[uint64]*client
	principals map[string]int // connections per principal with a connection limit
	closing    bool
	done       chan struct{} // closed when closing starts
	wg         sync.WaitGroup
}

// New returns a Hub configured by cfg, or an error naming the first invalid
// setting.
func New(cfg Config) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	h := &Hub{
		cfg:        cfg,
		log:        cfg.Logger,
		audit:      cfg.Logger.With("audit", true),
		principals: make(map[string]int),
		id:         "SB" + hex.EncodeToString(idb[:]),
		subs:       subject.NewSublist[*subscription](),
		listeners:  make(map[net.Listener]struct{}),
		clients:    make(map[uint64]*client),
		done:       make(chan struct{}),
	}
	if !cfg.NoSharedMemory {
		h.shm = newBroker(h)
	}
	if cfg.DataDir != "" {
		if err := h.openQueues(); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Serve accepts connections on every listener until Shutdown or Close is
// called, or ctx is cancelled (which closes the hub at once, like Close).
// It takes ownership of the listeners and closes them. It returns
// ErrServerClosed after a shutdown, or the first accept error otherwise.
func (h *Hub) Serve(ctx context.Context, listeners ...net.Listener) error {
	if len(listeners) == 0 {
		return errors.New("hub: Serve needs at least one listener")
	}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		for _, l := range listeners {
			l.Close()
		}
		return ErrServerClosed
	}
	for _, l := range listeners {
		h.listeners[l] = struct{}{}
	}
	// Added under h.mu, so Close cannot Wait before these goroutines count.
	h.wg.Add(len(listeners))
	h.mu.Unlock()

	errc := make(chan error, len(listeners))
	var accepting sync.WaitGroup
	for _, l := range listeners {
		accepting.Add(1)
		go func() {
			defer h.wg.Done()
			defer accepting.Done()
			errc <- h.acceptLoop(l)
		}()
	}
	stop := context.AfterFunc(ctx, func() { h.Close() })
	defer stop()

	err := <-errc
	if ctx.Err() != nil {
		// Cancelled: finish closing before returning, as documented.
		h.Close()
	}
	if h.isClosing() {
		err = ErrServerClosed
	} else {
		// One listener failed: stop the others too.
		h.Close()
	}
	accepting.Wait()
	return err
}

func (h *Hub) isClosing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closing
}

func (h *Hub) acceptLoop(l net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if h.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAcceptError(err) {
				// Out of file descriptors or memory: back off, keep serving.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				h.log.Warn("accept", "listener", l.Addr().String(), "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-h.done:
				}
				continue
			}
			return err
		}
		backoff = 0
		h.startClient(nc, l)
	}
}

// startClient registers a new connection and starts its reader.
func (h *Hub) startClient(nc net.Conn, l net.Listener) {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		nc.Close()
		return
	}
	if len(h.clients) >= h.cfg.MaxConnections {
		h.mu.Unlock()
		h.stats.rejected.Add(1)
		h.auditConn("connection refused: maximum connections reached", "remote", remoteAddr(nc), "max", h.cfg.MaxConnections)
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(protocol.AppendErr(nil, "maximum connections exceeded"))
		nc.Close()
		return
	}
	c := newClient(h, nc, l)
	h.clients[c.id] = c
	h.wg.Add(1)
	h.mu.Unlock()
	h.stats.accepted.Add(1)
	go func() {
		defer h.wg.Done()
		c.run()
	}()
}

func (h *Hub) removeClient(c *client) {
	h.mu.Lock()
	delete(h.clients, c.id)
	h.mu.Unlock()
}

// Shutdown stops accepting connections, flushes what every connection has
// pending, closes them and waits for the hub's goroutines to exit. If ctx
// ends first, the remaining connections are closed at once and Shutdown
// returns ctx's error after the goroutines exit.
func (h *Hub) Shutdown(ctx context.Context) error {
	clients := h.beginClose()
	for _, c := range clients {
		c.closeAfterFlush()
	}
	waited := make(chan struct{})
	go func() { h.wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		for _, c := range clients {
			c.closeNow(errShutdown)
		}
		<-waited
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, without
// flushing, and waits for the hub's goroutines to exit.
func (h *Hub) Close() error {
	for _, c := range h.beginClose() {
		c.closeNow(errShutdown)
	}
	h.wait()
	return nil
}

// wait waits for every connection's goroutines, then for the shm
// forwarders, which end once their publishers are gone.
func (h *Hub) wait() {
	h.wg.Wait()
	if h.shm != nil {
		h.shm.wg.Wait()
	}
	h.closeQueues.Do(func() {
		if h.queues != nil {
			if err := h.queues.Close(); err != nil {
				h.log.Error("hub: closing the queues", "err", err)
			}
		}
	})
}

// beginClose marks the hub closing, closes the listeners and returns the
// connected clients.
func (h *Hub) beginClose() []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closing {
		h.closing = true
		close(h.done)
	}
	for l := range h.listeners {
		l.Close()
		delete(h.listeners, l)
	}
	clients := make([]*client, 0, len(h.clients))
	for _, c := range h.clients {
		clients = append(clients, c)
	}
	return clients
}

// info returns the INFO frame for a new connection.
func (h *Hub) info(c *client, maxPayload int) []byte {
	inf := protocol.Info{
		ServerID:   h.id,
		ServerName: h.cfg.Name,
		Version:    Version,
		Go:         runtime.Version(),
		Headers:    true,
		MaxPayload: int64(maxPayload),
		Proto:      1,
		ClientID:   c.id,
	}
	if !c.who.Local && !h.cfg.Policy.AllowAnonymous() {
		inf.AuthRequired = true
	}
	inf.SharedMemory = c.shmCapable()
	if c.tls != nil {
		inf.TLSRequired = true
		inf.TLSVerify = c.tlsVerify
	}
	if a, ok := c.nc.LocalAddr().(*net.TCPAddr); ok {
		inf.Host = a.IP.String()
		inf.Port = a.Port
	}
	if a, ok := c.nc.RemoteAddr().(*net.TCPAddr); ok {
		inf.ClientIP = a.IP.String()
	}
	return protocol.AppendInfo(nil, &inf)
}

func remoteAddr(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	return nc.LocalAddr().Network()
}

// Config returns the hub's effective configuration, defaults filled in.
func (h *Hub) Config() Config { return h.cfg }
