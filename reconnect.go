package switchboard

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"switchboard/internal/protocol"
)

// reconnect runs on the reader after nc failed with cause. It moves the
// Conn to reconnecting, then dials with backoff until a handshake succeeds.
// It returns the new socket and parser, or nils once the Conn is closed
// (by Close, NoReconnect or MaxReconnects).
//
// What survives a disconnect: subscriptions (re-sent on resume), Flush
// waiters (re-PINGed on resume), pending Requests (their inbox is
// re-subscribed) and publishes made while disconnected (the reconnect
// buffer). What does not: frames that were buffered but not yet written
// when the connection was lost; they are discarded (at most once), which
// also keeps SUB/UNSUB/PING frames from being sent twice.
func (c *Conn) reconnect(w *worker, nc net.Conn, cause error) (net.Conn, *protocol.Parser) {
	_ = nc.Close()
	c.wmu.Lock()
	if c.status.Load() == statusClosed {
		c.wmu.Unlock()
		return nil, nil
	}
	switch {
	case c.rServerErr != nil:
		cause = c.rServerErr
	case c.writeErr != nil:
		cause = c.writeErr
	}
	c.rServerErr, c.writeErr = nil, nil
	c.status.Store(statusReconnecting)
	c.nc = nil
	c.out = c.out[:0]
	waiters := c.pongs[:0]
	for _, ch := range c.pongs {
		if ch != nil {
			waiters = append(waiters, ch)
		}
	}
	clear(c.pongs[len(waiters):])
	c.pongs = waiters
	c.pingsOut = 0
	c.wcond.Broadcast()
	c.wmu.Unlock()

	c.shmReleaseFds()
	c.shmLost()
	c.opts.Logger.Warn("switchboard: disconnected", "url", c.url, "err", cause)
	if h := c.opts.DisconnectHandler; h != nil {
		c.events.push(func() { h(c, cause) })
	}
	if c.opts.NoReconnect {
		c.close(w, fmt.Errorf("connection lost, reconnect disabled: %w", cause), true)
		return nil, nil
	}
	// A hub that accepts the handshake and then drops the connection at
	// once (restarting, refusing after CONNECT) must not be hammered: a
	// connection that did not stay up for MaxReconnectWait carries the
	// backoff on from where the last outage left it.
	if time.Since(c.upSince) < c.opts.MaxReconnectWait {
		c.flaps++
	} else {
		c.flaps = 0
	}
	for attempt := 1; ; attempt++ {
		if !c.sleep(c.backoff(attempt + c.flaps)) {
			return nil, nil
		}
		ss, err := c.dial(c.ctx)
		if err == nil {
			if !c.resume(ss.nc, ss.info) {
				_ = ss.nc.Close()
				return nil, nil
			}
			c.parser = ss.p
			c.upSince = time.Now()
			c.shmStart(ss.info)
			c.lateErrors(ss)
			c.opts.Logger.Info("switchboard: reconnected", "url", c.url, "attempts", attempt)
			if h := c.opts.ReconnectHandler; h != nil {
				c.events.push(func() { h(c) })
			}
			return ss.nc, ss.p
		}
		if c.ctx.Err() != nil {
			return nil, nil
		}
		c.opts.Logger.Debug("switchboard: reconnect attempt failed", "url", c.url, "attempt", attempt, "err", err)
		var se *ServerError
		if errors.As(err, &se) {
			c.reportErr(nil, se)
		}
		if c.opts.MaxReconnects > 0 && attempt >= c.opts.MaxReconnects {
			c.close(w, fmt.Errorf("gave up reconnecting after %d attempts: %w", attempt, err), true)
			return nil, nil
		}
	}
}

// backoff returns the delay before reconnect attempt n (from 1):
// ReconnectWait doubled per attempt, capped at MaxReconnectWait, then
// randomised to between half and all of it.
func (c *Conn) backoff(n int) time.Duration {
	d := c.opts.ReconnectWait
	for i := 1; i < n && d < c.opts.MaxReconnectWait; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxReconnectWait)
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits d, or reports false when the Conn closes first.
func (c *Conn) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.closedCh:
		return false
	}
}

// resume installs a freshly handshaken socket: it queues, ahead of the
// reconnect buffer, a SUB for every live subscription (with an UNSUB for
// the rest of an AutoUnsubscribe count), and after it a PING for every
// Flush waiter, then marks the Conn connected and wakes the flusher. It
// reports false if the Conn closed meanwhile.
func (c *Conn) resume(nc net.Conn, info *protocol.Info) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.info = *info
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		if !s.unsubSent && s.kind != kindCtl {
			subs = append(subs, s)
		}
	}
	slices.SortFunc(subs, func(a, b *Subscription) int { return cmp.Compare(a.sid, b.sid) })

	c.wmu.Lock()
	pre := make([]byte, 0, len(subs)*64+len(c.out)+len(c.pongs)*len(protocol.Ping))
	for _, s := range subs {
		pre = protocol.AppendSub(pre, s.Subject, s.Queue, s.sidStr)
		s.mu.Lock()
		s.base = s.receivedLocked()
		if s.max > 0 && s.max > s.base {
			pre = protocol.AppendUnsub(pre, s.sidStr, s.max-s.base)
		}
		s.mu.Unlock()
	}
	pre = append(pre, c.out...)
	for range c.pongs {
		pre = append(pre, protocol.Ping...)
	}
	c.out = pre
	c.nc = nc
	c.setMaxPayload(info.MaxPayload)
	c.status.Store(statusConnected)
	c.wcond.Broadcast()
	c.wmu.Unlock()
	c.reconnects.Add(1)
	c.wakeFlusher()
	return true
}
