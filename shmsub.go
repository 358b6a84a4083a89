package switchboard

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"switchboard/internal/protocol"
	"switchboard/internal/subject"
	"switchboard/shm"
)

// subRing is a ring one subscription reads, on a goroutine of its own
// that hands each message to the subscription like the socket reader does.
type subRing struct {
	id      uint64
	pattern string
	region  *shm.Region
	cur     *shm.Cursor
	rd      *shm.Reader
	cancel  context.CancelFunc
}

// shmAttach starts reading a ring for the subscription the hub names.
func (c *Conn) shmAttach(m *protocol.ShmControl, fds []int) error {
	if len(fds) != 2 {
		return fmt.Errorf("an attach comes with 2 descriptors, not %d", len(fds))
	}
	sid, err := strconv.ParseUint(m.Sid, 10, 64)
	if err != nil {
		return fmt.Errorf("bad sid %q", m.Sid)
	}
	c.mu.RLock()
	s, resp := c.subs[sid], c.resp
	c.mu.RUnlock()
	if s == nil || s.Subject != m.Pattern {
		closeFds(fds) // unsubscribed meanwhile
		return nil
	}
	region, err := shm.OpenReader(fds[0])
	if err != nil {
		return err
	}
	cur, err := shm.OpenCursor(fds[1], true)
	if err != nil {
		region.Close()
		closeFds(fds[1:])
		return err
	}
	rd, err := region.NewReader()
	if err != nil {
		region.Close()
		cur.Close()
		return err
	}
	rd.Seek(m.Start)
	rd.AttachCursor(cur)
	ctx, cancel := context.WithCancel(c.ctx)
	r := &subRing{id: m.Ring, pattern: m.Pattern, region: region, cur: cur, rd: rd, cancel: cancel}
	s.mu.Lock()
	if s.closed || s.finishing {
		s.mu.Unlock()
		cancel()
		region.Close()
		cur.Close()
		return nil
	}
	s.rings = append(s.rings, r)
	s.mu.Unlock()
	c.spawn(func(*worker) { c.readRing(ctx, s, resp, r) })
	return nil
}

// readRing delivers r's messages to s until r closes or s stops reading
// it, then unmaps it.
func (c *Conn) readRing(ctx context.Context, s *Subscription, resp *respMux, r *subRing) {
	defer func() {
		r.cancel()
		s.dropRing(r)
		r.region.Close()
		r.cur.Close()
	}()
	var buf []byte
	for {
		var m shm.Msg
		var err error
		buf, m, err = r.rd.Recv(ctx, buf)
		if errors.Is(err, shm.ErrCorrupt) {
			continue
		}
		if err != nil {
			return // closed by the publisher or the hub, or detached
		}
		if m.Missed > 0 {
			s.missed(int(m.Missed))
		}
		f, err := shm.ParseFrame(m.Data)
		if err != nil || !subject.Match(r.pattern, f.Subject) || !validSubject(f.Subject, false) ||
			(f.Reply != "" && !validSubject(f.Reply, false)) {
			s.missed(1)
			continue
		}
		fr := protocol.Frame{Op: protocol.OpMsg, Subject: []byte(f.Subject), HeaderLen: f.HdrLen, Payload: f.Body}
		if f.Reply != "" {
			fr.Reply = []byte(f.Reply)
		}
		if f.HdrLen > 0 {
			fr.Op = protocol.OpHMsg
		}
		c.inMsgs.Add(1)
		c.inBytes.Add(uint64(len(f.Body)))
		c.deliverTo(s, resp, &fr)
	}
}

// missed counts messages the subscription lost in a ring (overwritten
// before it read them) and reports them like dropped ones.
func (s *Subscription) missed(n int) {
	s.mu.Lock()
	s.dropped += n
	report := !s.slow
	s.slow = true
	if report && s.kind == kindSync {
		s.slowNext = true
	}
	s.mu.Unlock()
	if report {
		s.conn.reportErr(s, fmt.Errorf("%w: %d messages overwritten in shared memory before they were read", ErrSlowConsumer, n))
	}
}

func (s *Subscription) dropRing(r *subRing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.rings {
		if o == r {
			s.rings = append(s.rings[:i], s.rings[i+1:]...)
			return
		}
	}
}

// shmDetachAll stops reading every ring (the subscription ended, or the
// connection was lost).
func (s *Subscription) shmDetachAll() {
	s.mu.Lock()
	rings := s.rings
	s.mu.Unlock()
	for _, r := range rings {
		r.cancel()
	}
}
