package switchboard

import "time"

// PendingPongs reports how many PINGs the Conn still waits a PONG for
// (tests only).
func PendingPongs(c *Conn) int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.pongs)
}

// ShmOut reports how many messages the Conn published into shared-memory
// rings (tests only).
func ShmOut(c *Conn) uint64 {
	if c.shm == nil {
		return 0
	}
	m, _ := c.shm.sent()
	return m
}

// ShmWriting reports how many rings the Conn writes into (tests only).
func ShmWriting(c *Conn) int {
	if c.shm == nil {
		return 0
	}
	c.shm.mu.Lock()
	defer c.shm.mu.Unlock()
	n := 0
	for _, p := range c.shm.pubs {
		if !p.isClosed() {
			n++
		}
	}
	return n
}

// DecodePubAck exposes decodePubAck.
var DecodePubAck = decodePubAck

// ViewInRing reports whether v is held in place in a ring (tests only).
func ViewInRing(v *View) bool { return v.ring != nil }

// ShmReading reports how many rings the subscription reads (tests only).
func ShmReading(s *Subscription) int { return int(s.nrings.Load()) }

// ShmTracked reports how many reader cursors the Conn's rings track
// (tests only).
func ShmTracked(c *Conn) int {
	if c.shm == nil {
		return 0
	}
	c.shm.mu.Lock()
	defer c.shm.mu.Unlock()
	n := 0
	for _, p := range c.shm.pubs {
		n += len(p.w.Readers())
	}
	return n
}

// SubSpinBudget returns the spin budget of s's NextMsg and NextView.
func SubSpinBudget(s *Subscription) time.Duration { return s.spin.Budget() }

// SubSleeping reports whether a goroutine sleeps (or is about to) in s's
// sleepRings.
func SubSleeping(s *Subscription) bool { return s.sleep.sleeping.Load() }

// ShmSlotSize returns the slot size of the ring the Conn writes subj
// into, or 0 (tests only).
func ShmSlotSize(c *Conn, subj string) int {
	if p := c.shmPubFor(subj); p != nil {
		return p.w.SlotSize()
	}
	return 0
}
