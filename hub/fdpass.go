package hub

import (
	"net"

	"golang.org/x/sys/unix"
)

// fdMark says that the frame starting at byte pos of the outbound buffer
// carries file descriptors (SCM_RIGHTS): they are sent with its first
// byte, so the peer receives them no later than the frame itself.
type fdMark struct {
	pos int
	fds []int
}

// enqueueFds queues frame with copies of fds attached. Only unix socket
// connections can carry descriptors: elsewhere it reports false and
// queues nothing. The caller keeps its fds.
func (c *client) enqueueFds(frame []byte, fds []int) bool {
	if _, ok := c.raw.(*net.UnixConn); !ok || c.tls != nil {
		return false
	}
	dups := make([]int, 0, len(fds))
	for _, fd := range fds {
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeFds(dups)
			c.log.Warn("shm: cannot duplicate a descriptor to send", "err", err)
			return false
		}
		dups = append(dups, d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		closeFds(dups)
		return false
	}
	c.marks = append(c.marks, fdMark{pos: len(c.out), fds: dups})
	c.out = append(c.out, frame...)
	if len(c.out) > c.h.cfg.MaxPending {
		c.slowLocked()
	}
	return true
}

// dropMarksLocked closes the descriptors of the frames at or after byte
// from of the outbound buffer, which are being dropped.
func (c *client) dropMarksLocked(from int) {
	keep := c.marks[:0]
	for _, m := range c.marks {
		if m.pos < from {
			keep = append(keep, m)
		} else {
			closeFds(m.fds)
		}
	}
	c.marks = keep
}

// writeWithFds writes buf, sending each mark's descriptors with the first
// byte of its frame, and closes the descriptors it sent. It returns how
// many bytes were written; marks past that point were not sent.
func (c *client) writeWithFds(buf []byte, marks []fdMark) (int, error) {
	uc := c.raw.(*net.UnixConn)
	done := 0
	for i, m := range marks {
		if m.pos > done {
			n, err := c.nc.Write(buf[done:m.pos])
			done += n
			if err != nil {
				return done, err
			}
		}
		end := len(buf)
		if i+1 < len(marks) {
			end = marks[i+1].pos
		}
		n, _, err := uc.WriteMsgUnix(buf[m.pos:end], unix.UnixRights(m.fds...), nil)
		if n > 0 {
			closeFds(m.fds) // the kernel holds them for the peer now
			marks[i].fds = nil
		}
		done += n
		if err != nil {
			return done, err
		}
		if done < end {
			n, err := c.nc.Write(buf[done:end])
			done += n
			if err != nil {
				return done, err
			}
		}
	}
	if done < len(buf) {
		n, err := c.nc.Write(buf[done:])
		done += n
		return done, err
	}
	return done, nil
}

// requeueMarks puts back the marks of an unwritten rest of rest bytes,
// whose first byte was byte written of the buffer taken, in front of the
// marks of what was queued meanwhile. Called with c.mu held, after the
// rest was put in front of c.out.
func (c *client) requeueMarksLocked(taken []fdMark, written, rest int) {
	var back []fdMark
	for _, m := range taken {
		if m.pos >= written && m.fds != nil {
			back = append(back, fdMark{pos: m.pos - written, fds: m.fds})
		}
	}
	for _, m := range c.marks {
		back = append(back, fdMark{pos: m.pos + rest, fds: m.fds})
	}
	c.marks = back
}

func closeFds(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
