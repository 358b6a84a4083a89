package switchboard

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"switchboard/internal/protocol"
)

// readBufferSize is the reader's socket read size.
const readBufferSize = 64 << 10

// readLoop is the reader goroutine: it reads and dispatches until the
// connection is lost, then reconnects (see reconnect.go) and goes on, until
// the Conn closes.
func (c *Conn) readLoop(w *worker, nc net.Conn, p *protocol.Parser) {
	buf := make([]byte, readBufferSize)
	for nc != nil {
		err := c.readConn(nc, p, buf)
		nc, p = c.reconnect(w, nc, err)
	}
	c.shmReleaseFds()
}

// readConn reads from nc until an error and returns it.
func (c *Conn) readConn(nc net.Conn, p *protocol.Parser, buf []byte) error {
	c.parser = p
	uc, _ := nc.(*net.UnixConn)
	var oob []byte
	if uc != nil && c.shm != nil {
		oob = make([]byte, fdOOBSize)
	}
	for {
		var n int
		var err error
		if oob != nil {
			n, err = c.readFds(uc, buf, oob)
		} else {
			n, err = nc.Read(buf)
		}
		if n > 0 {
			perr := p.Parse(buf[:n], c.dispatchFn)
			if perr != nil {
				return fmt.Errorf("parse: %w", perr)
			}
		}
		if err != nil {
			return err
		}
	}
}

// dispatch handles one frame from the hub. It runs on the reader and never
// blocks: messages go to queues, channels or request waiters; handlers run
// on the event goroutine; PONGs to server PINGs go through the flusher.
func (c *Conn) dispatch(f *protocol.Frame) error {
	switch f.Op {
	case protocol.OpMsg, protocol.OpHMsg:
		c.processMsg(f)
	case protocol.OpPing:
		c.queuePong()
	case protocol.OpPong:
		c.processPong()
	case protocol.OpInfo:
		c.processInfo(f.Payload)
	case protocol.OpErr:
		c.processErr(string(f.Payload))
	}
	return nil
}

func (c *Conn) processMsg(f *protocol.Frame) {
	// Counted before delivery, so that Stats already includes a message
	// its handler sees.
	c.inMsgs.Add(1)
	c.inBytes.Add(uint64(len(f.Payload)))
	sid, ok := parseSID(f.SID)
	if !ok {
		return
	}
	c.mu.RLock()
	s, resp := c.subs[sid], c.resp
	c.mu.RUnlock()
	if s == nil {
		return // unsubscribed; the hub had already sent it
	}
	if s.kind == kindCtl {
		c.shmControl(f)
		return
	}
	c.deliverTo(s, resp, f)
}

// deliverTo hands the message in f to s (from the reader, or from the
// goroutine reading one of s's shared-memory rings).
func (c *Conn) deliverTo(s *Subscription, resp *respMux, f *protocol.Frame) {
	if s.kind == kindResp {
		resp.deliver(f, s)
		return
	}
	m, err := newMsg(f, s)
	if err != nil {
		c.reportErr(s, fmt.Errorf("switchboard: message on %q: %w", m.Subject, err))
	}
	c.deliverMsg(s, m)
}

// deliverMsg queues m on s and ends s when it was the last of an
// AutoUnsubscribe count.
func (c *Conn) deliverMsg(s *Subscription, m *Msg) {
	if s.deliver(m) {
		c.endCounted(s)
	}
}

// endCounted ends a subscription whose AutoUnsubscribe count was reached:
// it lets the queue run out. The hub drops the subscription by itself when
// it delivered the last message, but it never sees the messages that came
// through shared-memory rings, so a Conn that may read rings tells it. It
// must not be called with a ring's mutex held (finish detaches the rings).
func (c *Conn) endCounted(s *Subscription) {
	c.mu.Lock()
	if c.subs[s.sid] == s {
		delete(c.subs, s.sid)
		if c.shm != nil && !s.unsubSent {
			s.unsubSent = true
			c.sendUnsubLocked(s, 0)
		}
	}
	c.mu.Unlock()
	s.finish()
}

// parseSID parses a decimal SID without allocating.
func parseSID(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + uint64(ch-'0')
	}
	return n, true
}

// processPong completes the oldest PING: a Flush waiter, or a keep-alive.
func (c *Conn) processPong() {
	c.wmu.Lock()
	c.pingsOut = 0
	if len(c.pongs) > 0 {
		ch := c.pongs[0]
		c.pongs[0] = nil
		c.pongs = c.pongs[1:]
		if ch != nil {
			ch <- nil // buffered, one send per waiter
		}
	}
	c.wmu.Unlock()
}

// processInfo applies an INFO update (max_payload; the rest is kept for
// reference).
func (c *Conn) processInfo(body []byte) {
	info, err := protocol.DecodeInfo(body)
	if err != nil {
		c.reportErr(nil, fmt.Errorf("switchboard: INFO: %w", err))
		return
	}
	c.mu.Lock()
	c.info = *info
	c.mu.Unlock()
	c.setMaxPayload(info.MaxPayload)
	c.parser.SetMaxPayload(int(info.MaxPayload))
}

// processErr handles -ERR. A permissions violation leaves the connection
// up and is reported with the subscription it names, if any. Other errors
// are usually followed by the hub closing the connection; the error is
// reported and becomes the disconnect cause.
func (c *Conn) processErr(text string) {
	se := &ServerError{Msg: text}
	if errors.Is(se, ErrPermission) {
		c.reportErr(c.subNamedIn(text), se)
		return
	}
	c.rServerErr = se
	c.reportErr(nil, se)
}

// subNamedIn finds the subscription a permissions error names, as in
// `Permissions Violation for Subscription to "foo.>"`.
func (c *Conn) subNamedIn(text string) *Subscription {
	const marker = "Subscription to "
	i := strings.Index(text, marker)
	if i < 0 {
		return nil
	}
	subj, queue, _ := strings.Cut(text[i+len(marker):], " using queue ")
	subj = strings.Trim(subj, "\" ")
	queue = strings.Trim(queue, "\" ")
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, s := range c.subs {
		if s.Subject == subj && (queue == "" || s.Queue == queue) {
			return s
		}
	}
	return nil
}
