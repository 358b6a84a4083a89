package switchboard

import (
	"context"
	"fmt"
	"time"

	"switchboard/internal/protocol"
)

// keepSpare reports whether a buffer that was just written is worth
// keeping for reuse: small ones always, big ones only while they are being
// filled well (a burst), so that an idle connection lets them go.
func keepSpare(buf []byte) bool {
	return cap(buf) <= 1<<20 || len(buf) >= cap(buf)/4
}

// Publish sends data to subject. It returns once the message is in the
// outbound buffer (data may be reused then); a background writer sends it.
// It blocks while the outbound buffer is above Options.WriteBufferLimit;
// while disconnected it buffers up to Options.ReconnectBufferSize, then
// returns ErrReconnectBufferFull. Use Flush to wait until the hub has
// processed what was published.
func (c *Conn) Publish(subject string, data []byte) error {
	return c.publish(nil, subject, "", nil, data, false)
}

// PublishRequest publishes data to subject with reply as the reply subject.
func (c *Conn) PublishRequest(subject, reply string, data []byte) error {
	return c.publish(nil, subject, reply, nil, data, false)
}

// PublishMsg publishes m.Data with m.Header (as HPUB when it has fields)
// to m.Subject, with m.Reply as the reply subject.
func (c *Conn) PublishMsg(m *Msg) error {
	return c.publish(nil, m.Subject, m.Reply, m.Header, m.Data, false)
}

// publish validates and appends one PUB or HPUB. inline (Request, Respond)
// writes from the calling goroutine when no write is in progress, instead
// of waking the flusher. A non-nil ctx bounds the wait under backpressure.
func (c *Conn) publish(ctx context.Context, subject, reply string, hdr Header, data []byte, inline bool) error {
	if c.shm != nil && reply == "" && len(hdr) == 0 {
		if done, err := c.publishFast(ctx, subject, data); done {
			return err
		}
	}
	if !validSubject(subject, false) {
		return fmt.Errorf("publish %q: %w", subject, ErrBadSubject)
	}
	if reply != "" && !validSubject(reply, false) {
		return fmt.Errorf("publish %q: reply %q: %w", subject, reply, ErrBadSubject)
	}
	var hb []byte
	if len(hdr) > 0 {
		if err := validHeader(hdr); err != nil {
			return fmt.Errorf("publish %q: %w", subject, err)
		}
		hb = protocol.AppendHeader(nil, &protocol.Header{Fields: hdr})
	}
	size := len(hb) + len(data)
	if max := c.maxPayload.Load(); int64(size) > max {
		return fmt.Errorf("publish %q: %d bytes, hub allows %d: %w", subject, size, max, ErrMaxPayload)
	}
	// The hub closes a connection whose control line is longer than its
	// limit: check the exact line this message needs.
	if line := pubLineLen(subject, reply, len(hb), size); line > maxControlLine {
		return fmt.Errorf("publish %q…: subject and reply too long for one protocol line (%d bytes, at most %d): %w", subject[:min(len(subject), 32)], line, maxControlLine, ErrBadSubject)
	}

retry:
	var gen uint64
	if c.shm != nil {
		gen = c.shm.gen.Load()
		if done, err := c.shmPublish(ctx, subject, reply, hb, data); done {
			return err
		}
	}

	c.wmu.Lock()
	if c.shm != nil && c.shm.gen.Load() != gen {
		// A ring arrived since shmPublish looked (see shmRing): look again.
		c.wmu.Unlock()
		goto retry
	}
	for {
		st := c.status.Load()
		if st == statusClosed {
			c.wmu.Unlock()
			return ErrClosed
		}
		if st == statusReconnecting || len(c.out) < c.opts.WriteBufferLimit {
			break
		}
		if ctx != nil {
			if err := ctx.Err(); err != nil {
				c.wmu.Unlock()
				return ctxError("switchboard: publish", err)
			}
			// Wake this wait when ctx ends; the writer wakes it otherwise.
			stop := context.AfterFunc(ctx, func() {
				c.wmu.Lock()
				c.wcond.Broadcast()
				c.wmu.Unlock()
			})
			c.wcond.Wait()
			stop()
			continue
		}
		c.wcond.Wait() // backpressure: the writer broadcasts after each write
	}
	before := len(c.out)
	if hb != nil {
		c.out = protocol.AppendHPub(c.out, subject, reply, hb, data)
	} else {
		c.out = protocol.AppendPub(c.out, subject, reply, data)
	}
	connected := c.status.Load() == statusConnected
	if !connected && len(c.out) > c.opts.ReconnectBufferSize {
		c.out = c.out[:before]
		c.wmu.Unlock()
		return ErrReconnectBufferFull
	}
	c.outMsgs++
	c.outBytes += uint64(size)
	wake := connected && !c.flushing
	if wake && inline {
		c.writeOutLocked()
		wake = false
	}
	c.wmu.Unlock()
	if wake {
		c.wakeFlusher()
	}
	return nil
}

// pubLineLen is the length of the PUB (or, with headers, HPUB) control
// line for a message, CRLF included.
func pubLineLen(subject, reply string, hdrLen, size int) int {
	n := len("PUB ") + len(subject) + 1 + decimalLen(size) + 2
	if reply != "" {
		n += len(reply) + 1
	}
	if hdrLen > 0 {
		n += 1 + decimalLen(hdrLen) + 1 // "H" and "hdrsize "
	}
	return n
}

// decimalLen is the number of decimal digits of n >= 0.
func decimalLen(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// wakeFlusher nudges the flusher without blocking.
func (c *Conn) wakeFlusher() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// writeOutLocked writes the outbound buffer until it is empty, unless
// another goroutine is already writing (it will pick up what was appended)
// or the Conn is not connected. Called and returns with wmu held; releases
// it during each write, when publishers append to the other buffer.
func (c *Conn) writeOutLocked() {
	for !c.flushing && len(c.out) > 0 && c.status.Load() == statusConnected {
		buf, nc := c.out, c.nc
		c.out, c.spare = c.spare[:0], nil
		c.flushing = true
		c.wmu.Unlock()
		_, err := nc.Write(buf)
		c.wmu.Lock()
		c.flushing = false
		if keepSpare(buf) {
			c.spare = buf[:0]
		}
		c.wcond.Broadcast()
		if err != nil {
			// The reader sees the closed socket and reconnects; what was
			// in buf is lost (at most once).
			if c.nc == nc && c.writeErr == nil {
				c.writeErr = fmt.Errorf("write: %w", err)
			}
			_ = nc.Close()
			if c.nc != nc {
				// A reconnect already installed a new socket while this
				// write was failing, and its wake-up found us flushing:
				// carry on with the new connection.
				continue
			}
			return
		}
	}
}

// flushLoop is the flusher goroutine: it writes what publishers buffered
// and sends keep-alive PINGs.
func (c *Conn) flushLoop() {
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.kick:
			c.wmu.Lock()
			c.writeOutLocked()
			c.wmu.Unlock()
		case <-t.C:
			c.keepAlive()
		case <-c.closedCh:
			return
		}
	}
}

// keepAlive sends a PING, or drops the connection when Options.MaxPingsOut
// PINGs went unanswered.
func (c *Conn) keepAlive() {
	c.wmu.Lock()
	if c.status.Load() != statusConnected {
		c.wmu.Unlock()
		return
	}
	if c.pingsOut >= c.opts.MaxPingsOut {
		nc := c.nc
		if c.writeErr == nil {
			c.writeErr = ErrStaleConnection
		}
		c.wmu.Unlock()
		_ = nc.Close()
		c.reportErr(nil, ErrStaleConnection)
		return
	}
	c.pingsOut++
	c.pongs = append(c.pongs, nil)
	c.out = append(c.out, protocol.Ping...)
	c.writeOutLocked()
	c.wmu.Unlock()
}

// Flush sends a PING and waits for the hub's PONG: when it returns nil,
// the hub has processed everything this Conn sent before. Concurrent
// Flushes each wait for their own PONG. While disconnected, Flush waits for
// the reconnect (its PING is sent after the reconnect buffer). It writes
// inline. A ctx deadline gives an error matching ErrTimeout and
// context.DeadlineExceeded; Close gives ErrClosed.
func (c *Conn) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return ctxError("switchboard: flush", err)
	}
	ch := make(chan error, 1)
	c.wmu.Lock()
	switch c.status.Load() {
	case statusClosed:
		c.wmu.Unlock()
		return ErrClosed
	case statusConnected:
		c.pongs = append(c.pongs, ch)
		c.out = append(c.out, protocol.Ping...)
		c.writeOutLocked()
	default: // reconnecting: resume sends a PING for each waiter
		c.pongs = append(c.pongs, ch)
	}
	c.wmu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		c.forgetPongWaiter(ch)
		return ctxError("switchboard: flush", ctx.Err())
	}
}

// forgetPongWaiter drops an abandoned Flush waiter, so that Flush calls
// timing out during a long outage do not pile up (each would be re-PINGed
// on resume). If its PING is already on the wire its slot stays, as a
// keep-alive, to keep the PONGs in order.
func (c *Conn) forgetPongWaiter(ch chan error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for i, w := range c.pongs {
		if w != ch {
			continue
		}
		if c.status.Load() == statusConnected {
			c.pongs[i] = nil
		} else {
			c.pongs = append(c.pongs[:i], c.pongs[i+1:]...)
		}
		return
	}
}

// sendSubLocked queues a SUB for s (and its remaining AutoUnsubscribe
// count) if connected; while disconnected, resume sends it. Called with mu
// held.
func (c *Conn) sendSubLocked(s *Subscription) {
	c.wmu.Lock()
	if c.status.Load() == statusConnected {
		c.out = protocol.AppendSub(c.out, s.Subject, s.Queue, s.sidStr)
		if !c.flushing {
			defer c.wakeFlusher()
		}
	}
	c.wmu.Unlock()
}

// sendUnsubLocked queues an UNSUB (max 0 = now) if connected; while
// disconnected nothing is needed, since resume re-sends only live
// subscriptions. Called with mu held.
func (c *Conn) sendUnsubLocked(s *Subscription, max int64) {
	c.wmu.Lock()
	if c.status.Load() == statusConnected {
		c.out = protocol.AppendUnsub(c.out, s.sidStr, max)
		if !c.flushing {
			defer c.wakeFlusher()
		}
	}
	c.wmu.Unlock()
}

// queuePong answers a server PING (from the reader; never writes inline, so
// the reader never blocks on the socket).
func (c *Conn) queuePong() {
	c.wmu.Lock()
	wake := false
	if c.status.Load() == statusConnected {
		c.out = append(c.out, protocol.Pong...)
		wake = !c.flushing
	}
	c.wmu.Unlock()
	if wake {
		c.wakeFlusher()
	}
}
