package switchboard

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RingOptions is the geometry of a ring asked for with NewPublisher.
type RingOptions struct {
	// Slots is the number of messages the ring holds, a power of two.
	// Default 64.
	Slots int
	// SlotSize is the largest message, in bytes. Default: the hub's
	// max_payload for this connection; at most 64 MiB, and the ring at
	// most 1 GiB.
	SlotSize int
}

// Publisher publishes to one subject, through a shared-memory ring of its
// own when the hub hands one out, over the socket otherwise. Its Loan and
// Send publish without copying: the caller writes the message straight
// into the ring. A Publisher is used by one goroutine at a time.
type Publisher struct {
	c       *Conn
	subject string
	ring    *shmPub
	buf     []byte
	loaned  bool
	locked  bool // holding ring.mu between Loan and Send
	loanMax int
}

// NewPublisher asks the hub for a ring for subject (a literal subject)
// with the geometry in o (nil: defaults) and waits for it until ctx ends.
// When shared memory is not available (a TCP connection, NoSharedMemory,
// a hub with it off) the Publisher works over the socket, and Shared
// reports false; a refusal by the hub's policy is returned as an error.
func (c *Conn) NewPublisher(ctx context.Context, subject string, o *RingOptions) (*Publisher, error) {
	if !validSubject(subject, false) {
		return nil, fmt.Errorf("publisher %q: %w", subject, ErrBadSubject)
	}
	p := &Publisher{c: c, subject: subject}
	if c.shm == nil {
		return p, nil
	}
	if o == nil {
		o = &RingOptions{}
	}
	st := c.shm
	st.mu.Lock()
	asked, hello := st.ctl != nil, st.hello
	st.mu.Unlock()
	if asked {
		// The hub's answer to HELLO may still be on its way.
		t := time.NewTimer(c.opts.DialTimeout)
		select {
		case <-hello:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	ch := make(chan any, 1)
	c.mu.Lock()
	st.mu.Lock()
	on := st.on && st.ctl != nil
	if on {
		if st.waiters == nil {
			st.waiters = make(map[string]chan any)
		}
		if st.waiters[subject] != nil {
			on = false // another request for it is under way
		} else {
			st.waiters[subject] = ch
		}
	}
	st.mu.Unlock()
	if on {
		c.shmSendLocked("PUB", "", map[string]any{"subject": subject, "slots": o.Slots, "slot_size": o.SlotSize})
	}
	c.mu.Unlock()
	if !on {
		return p, nil
	}
	select {
	case v := <-ch:
		if r, ok := v.(*shmPub); ok {
			p.ring = r
			return p, nil
		}
		if r := c.shmPubFor(subject); r != nil {
			p.ring = r // it already had one
			return p, nil
		}
		err, _ := v.(error)
		if errors.Is(err, ErrPermission) {
			return nil, err
		}
		return p, nil
	case <-ctx.Done():
		st.mu.Lock()
		if st.waiters[subject] == ch {
			delete(st.waiters, subject)
		}
		st.mu.Unlock()
		return nil, ctxError("switchboard: new publisher", ctx.Err())
	}
}

// shmPubFor returns the ring this Conn writes subject into, if any.
func (c *Conn) shmPubFor(subject string) *shmPub {
	c.shm.mu.Lock()
	defer c.shm.mu.Unlock()
	for _, p := range c.shm.pubs {
		if p.pattern == subject {
			return p
		}
	}
	return nil
}

// Shared reports whether the Publisher writes into a shared-memory ring.
func (p *Publisher) Shared() bool {
	return p.ring != nil && !p.ring.isClosed()
}

// Loan returns a buffer of n bytes for the next message. With a ring it
// is the ring's slot itself: write the message into it, then call Send
// (nothing else may publish to the ring in between). The buffer is valid
// until Send.
func (p *Publisher) Loan(n int) ([]byte, error) {
	if p.loaned {
		p.unlock()
	}
	p.loaned, p.loanMax = true, n
	if r := p.ring; r != nil {
		r.mu.Lock()
		if !r.closed {
			buf, err := r.loan(p.subject, n)
			if err == nil {
				p.locked = true
				return buf, nil
			}
			r.mu.Unlock()
			if !errors.Is(err, errTooBigForRing) {
				p.loaned = false
				return nil, err
			}
		} else {
			r.mu.Unlock()
		}
	}
	if cap(p.buf) < n {
		p.buf = make([]byte, n)
	}
	return p.buf[:n], nil
}

// Send publishes the first n bytes of the loaned buffer.
func (p *Publisher) Send(n int) error {
	if !p.loaned {
		return fmt.Errorf("switchboard: send without a loan: %w", ErrBadArgument)
	}
	if n < 0 || n > p.loanMax {
		p.unlock()
		p.loaned = false
		return fmt.Errorf("switchboard: send %d bytes of a %d-byte loan: %w", n, p.loanMax, ErrBadArgument)
	}
	p.loaned = false
	if p.locked {
		p.locked = false
		r := p.ring
		err := r.send(p.subject, n)
		r.mu.Unlock()
		return err
	}
	return p.c.Publish(p.subject, p.buf[:n])
}

// Publish copies data into the next message and sends it.
func (p *Publisher) Publish(data []byte) error {
	buf, err := p.Loan(len(data))
	if err != nil {
		return err
	}
	copy(buf, data)
	return p.Send(len(data))
}

func (p *Publisher) unlock() {
	if p.locked {
		p.locked = false
		p.ring.mu.Unlock()
	}
}
