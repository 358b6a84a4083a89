package hub

import (
	"errors"
	"net"
	"syscall"
	"time"

	"switchboard/internal/protocol"
)

// maxSpare is the largest write buffer an idle connection keeps for reuse;
// larger ones are released when the writer finds nothing more to send, so a
// burst does not pin memory on an idle connection (see keepSpareLocked).
// Regrowing buffers on every write halved 1 KiB pub→sub throughput.
const maxSpare = 256 << 10

// enqueue appends frame to the outbound buffer. The caller arranges the
// flush (pcd on the reader goroutine, or flushInline).
// Frames the hub generates for a peer (PONG, +OK, -ERR) count against
// MaxPending like deliveries, so a peer that sends PINGs and never reads
// is cut off instead of growing its buffer.
func (c *client) enqueue(frame []byte) {
	c.mu.Lock()
	if !c.closing {
		c.out = append(c.out, frame...)
		if len(c.out) > c.h.cfg.MaxPending {
			c.slowLocked()
		}
	}
	c.mu.Unlock()
}

// enqueueString is enqueue for constant frames.
func (c *client) enqueueString(frame string) {
	c.mu.Lock()
	if !c.closing {
		c.out = append(c.out, frame...)
		if len(c.out) > c.h.cfg.MaxPending {
			c.slowLocked()
		}
	}
	c.mu.Unlock()
}

// flushTouched flushes every connection the current read delivered to.
func (c *client) flushTouched() {
	c.lastDst = nil
	for d := range c.pcd {
		d.flushInline()
		delete(c.pcd, d)
	}
}

// flushInline writes the pending frames with one non-blocking write from the
// calling goroutine, saving a goroutine hand-off on the latency path. What
// the socket does not take at once is left to a writer goroutine.
func (c *client) flushInline() {
	c.mu.Lock()
	if c.writing || c.closed {
		c.mu.Unlock()
		return
	}
	if len(c.out) == 0 {
		c.closeIfDoneLocked()
		return
	}
	if c.rc == nil || len(c.marks) > 0 {
		// Descriptors go with sendmsg on the writer goroutine.
		c.startWriterLocked()
		c.mu.Unlock()
		return
	}
	c.writing = true
	buf := c.out
	c.out, c.spare, c.head = c.spare[:0], nil, 0
	c.mu.Unlock()

	n, err := tryWrite(c.rc, buf)
	c.h.stats.outBytes.Add(uint64(n))

	c.mu.Lock()
	c.progress = n > 0
	if err != nil {
		c.writing = false
		c.mu.Unlock()
		c.closeNow(err)
		return
	}
	if n == len(buf) {
		c.keepSpareLocked(buf)
		c.writing = false
		if len(c.out) == 0 {
			c.closeIfDoneLocked()
			return
		}
	} else {
		// Keep the unwritten rest in front of what arrived meanwhile.
		rest := buf[n:]
		c.head = len(rest)
		c.out = append(rest, c.out...)
		c.writing = false
	}
	c.startWriterLocked()
	c.mu.Unlock()
}

// startWriterLocked starts the writer goroutine unless one is running.
func (c *client) startWriterLocked() {
	if c.writing || c.closed {
		return
	}
	c.writing = true
	c.wg.Add(1)
	go c.writeLoop()
}

// closeIfDoneLocked closes the connection if it is closing and nothing is
// left to write. It unlocks c.mu.
func (c *client) closeIfDoneLocked() {
	done := c.closing && !c.closed && !c.writing && len(c.out) == 0
	if done {
		c.markClosedLocked()
	}
	c.mu.Unlock()
	if done {
		c.raw.Close() // not the TLS layer: its close_notify may block for seconds on a peer that stopped reading
	}
}

// writeLoop writes pending frames until none are left, then exits.
func (c *client) writeLoop() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if c.closed || len(c.out) == 0 {
			c.writing = false
			if cap(c.spare) > maxSpare {
				c.spare = nil
			}
			if cap(c.out) > maxSpare {
				c.out = nil
			}
			c.closeIfDoneLocked()
			return
		}
		buf, marks := c.out, c.marks
		c.out, c.spare, c.head, c.marks = c.spare[:0], nil, 0, nil
		deadline := c.h.cfg.WriteDeadline
		if c.closing && !c.progress {
			// Closing a peer that took nothing from the last write: it
			// is likely reading nothing, so give up sooner. One that is
			// reading keeps the whole deadline, or a slow consumer whose
			// kernel buffers drain slower than a second per wake-up
			// would lose its -ERR and end mid-message.
			deadline = min(deadline, time.Second)
		}
		c.mu.Unlock()

		c.nc.SetWriteDeadline(time.Now().Add(deadline))
		var n int
		var err error
		if len(marks) > 0 {
			n, err = c.writeWithFds(buf, marks)
		} else {
			n, err = c.nc.Write(buf)
		}
		// Clear the deadline: a stale one would fail the next inline write
		// (RawConn.Write honours it) long after this write succeeded.
		c.nc.SetWriteDeadline(time.Time{})
		c.h.stats.outBytes.Add(uint64(n))
		var ne net.Error
		timeout := err != nil && errors.As(err, &ne) && ne.Timeout()
		if timeout && n > 0 {
			// The peer is reading, only slower than the backlog: the
			// deadline is about progress, so put the rest back and go on.
			c.mu.Lock()
			c.progress = true
			rest := buf[n:]
			c.head = len(rest)
			c.out = append(rest, c.out...)
			c.requeueMarksLocked(marks, n, len(rest))
			c.mu.Unlock()
			continue
		}
		if err != nil {
			for _, m := range marks {
				closeFds(m.fds) // not sent; the nil ones were
			}
			if timeout {
				c.h.stats.slowConsumers.Add(1)
				c.log.Warn("slow consumer: write stalled", "deadline", deadline, "pending", len(buf)-n)
				err = errSlowConsumer
			}
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			c.closeNow(err)
			return
		}
		c.mu.Lock()
		c.progress = true
		c.keepSpareLocked(buf)
		c.mu.Unlock()
	}
}

// keepSpareLocked keeps a written buffer for reuse. While more is pending
// (a stream is flowing) any size is kept, so a busy connection does not
// regrow its buffer on every write; an idle one keeps at most maxSpare.
func (c *client) keepSpareLocked(buf []byte) {
	if len(c.out) > 0 || cap(buf) <= maxSpare {
		c.spare = buf[:0]
		return
	}
	if cap(c.out) > maxSpare {
		c.out = nil
	}
}

// slowLocked disconnects a consumer whose pending bytes passed MaxPending:
// queued frames are dropped (except the rest of a frame already partly
// written), -ERR 'Slow Consumer' is queued and the connection closes once
// that is written. Called with c.mu held.
func (c *client) slowLocked() {
	c.h.stats.slowConsumers.Add(1)
	c.log.Warn("slow consumer: pending bytes exceeded", "pending", len(c.out), "max_pending", c.h.cfg.MaxPending)
	c.closing = true
	// A write in flight finishes under the normal WriteDeadline and -ERR
	// follows it; a peer that reads nothing at all is closed when that
	// deadline passes, without the -ERR it would never read.
	c.dropMarksLocked(c.head)
	c.out = protocol.AppendErr(c.out[:c.head], "Slow Consumer")
	if cap(c.out) > maxSpare {
		c.out = append([]byte(nil), c.out...)
	}
}

// sendErrAndClose queues -ERR msg and closes the connection once it is
// written; later deliveries are dropped.
func (c *client) sendErrAndClose(msg string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.out = protocol.AppendErr(c.out, msg)
	c.mu.Unlock()
	c.flushInline()
}

// closeAfterFlush stops deliveries and closes the connection once what is
// pending has been written (graceful shutdown).
func (c *client) closeAfterFlush() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.flushInline()
}

// closeNow closes the connection at once, dropping what is pending.
func (c *client) closeNow(reason error) {
	c.mu.Lock()
	c.closing = true
	already := c.closed
	if !already {
		c.markClosedLocked()
	}
	c.out = nil
	c.dropMarksLocked(0)
	c.mu.Unlock()
	if !already {
		c.raw.Close() // not the TLS layer: its close_notify may block for seconds on a peer that stopped reading
		if reason != nil && !errors.Is(reason, errShutdown) {
			c.log.Debug("closing", "reason", reason)
		}
	}
}

// markClosedLocked records that the connection is closed (the caller
// closes the socket after unlocking) and wakes whoever waits on c.done.
func (c *client) markClosedLocked() {
	c.closed = true
	close(c.done)
	if c.pidfile != nil {
		// Ends the pidfd watch (pidwatch_linux.go), which run waits for.
		// Close waits only for the watcher's Read, which needs no lock.
		c.pidfile.Close()
		c.pidfile = nil
	}
}

// tryWrite makes one non-blocking write of b to the socket.
func tryWrite(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), b)
			if werr != syscall.EINTR {
				return true
			}
		}
	})
	if n < 0 {
		n = 0
	}
	if werr == syscall.EAGAIN {
		werr = nil
	}
	if err != nil {
		return n, err
	}
	return n, werr
}
