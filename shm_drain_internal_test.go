package switchboard

// White-box tests of the drain of a SubscribeSync subscription's ring
// (detachRingLocked, pollRings), on rings built here rather than handed
// out by a hub: they set up the exact states a race or a damaged ring
// leaves.

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"golang.org/x/sys/unix"

	"switchboard/shm"
)

// TestShmDrainCountPastEnd: the publisher laps a drained reader and the
// slots it lands on are damaged, so the drain's last poll skips past the
// drain's end without a message. Only what was skipped before the end
// counts as dropped; countUnreported used to add the whole skip.
func TestShmDrainCountPastEnd(t *testing.T) {
	const slots, size = 8, 64
	region, err := shm.CreateUnsealed("sb-drain-count", slots, size)
	if err != nil {
		t.Fatal(err)
	}
	// A second, writable mapping to damage slots, as a torn or hostile
	// write would (made before the writer seals the memfd).
	mem, err := unix.Mmap(region.Fd(), 0, region.Size(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	wfd, err := unix.FcntlInt(uintptr(region.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	wreg, err := shm.OpenWriter(wfd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wreg.Close() })
	w, err := wreg.Writer()
	if err != nil {
		t.Fatal(err)
	}
	stride := int(uint32(mem[shm.OffStride]) | uint32(mem[shm.OffStride+1])<<8 | uint32(mem[shm.OffStride+2])<<16 | uint32(mem[shm.OffStride+3])<<24)
	msg := make([]byte, 8)
	for range 4 { // seq 0..3: what the ring held when the drain began
		if err := w.Publish(msg); err != nil {
			t.Fatal(err)
		}
	}
	c, s, r := directSub(t, region)
	r.drainTo.Store(region.Stats().WriteSeq) // 4, as shmDetachAll does
	r.drainPending.Store(true)
	// The publisher laps the reader before it reads: seq 4..11.
	for range 8 {
		if err := w.Publish(msg); err != nil {
			t.Fatal(err)
		}
	}
	// The lapped reader lands at 12-8+2 = 6; slots of seq 6, 7, 8 are
	// damaged, so poll's four attempts find no message (ErrCorrupt).
	for _, seq := range []int{6, 7, 8} {
		off := shm.HeaderSize + (seq%slots)*stride + shm.SlotOffSeq
		mem[off] = 5 // seqlock word 5: neither "writing" nor "done" of seq 0, 6, 7 or 8
		for i := 1; i < 8; i++ {
			mem[off+i] = 0
		}
	}
	r.mu.Lock()
	c.detachRingLocked(s, r)
	r.mu.Unlock()
	// Nothing before the end (seq 0..3) was delivered: 4 missed. 6, 7
	// and 8 were published after the drain began.
	if got := s.Dropped(); got != 4 {
		t.Errorf("Dropped = %d after a drain that lost the 4 messages before its end (seq 0..3), want 4; queued %d", got, len(s.q))
	}
}

// TestShmPollRingsPastDrain: a NextMsg running while Drain detaches a
// SubscribeSync subscription's ring polls it with pollRings, which can win
// r.mu between shmDetachAll's store of drainPending and its r.mu.Lock (and
// again while that Lock waits). It used to queue a message published
// after the drain began; it leaves a draining ring to detachRingLocked.
func TestShmPollRingsPastDrain(t *testing.T) {
	region, w := newRing(t, "sb-drain-poll")
	c, s, r := directSub(t, region)
	// The drain begins with the ring empty (drainTo 0), as shmDetachAll
	// stores it; then the publisher writes one more message.
	r.drainTo.Store(region.Stats().WriteSeq)
	r.drainPending.Store(true)
	r.cancel()
	r.dropPending.Store(true)
	if err := w.PublishFrame("x", "", nil, []byte("late")); err != nil {
		t.Fatal(err)
	}
	// NextMsg's pollRings wins r.mu before shmDetachAll's Lock.
	s.pollRings()
	if n := len(s.q) - s.head; n != 0 {
		t.Errorf("pollRings queued %d message(s) published after the drain's end (drainTo %d)", n, r.drainTo.Load())
	}
	r.mu.Lock()
	c.detachRingLocked(s, r)
	r.mu.Unlock()
}

// TestShmSecondDrainKeepsEnd: a ring the pump drains stays with its
// subscription until the pump has emptied it, so a second drain (the
// Conn's Drain after the subscription's) finds it again. It must keep the
// end the first drain set, not move it past what was published since.
func TestShmSecondDrainKeepsEnd(t *testing.T) {
	region, w := newRing(t, "sb-drain-twice")
	c, s, r := directSub(t, region)
	r.direct = false // the pump's: shmDetachAll leaves it mapped
	t.Cleanup(func() {
		r.mu.Lock()
		c.dropRingLocked(s, r)
		r.mu.Unlock()
	})
	publish := func(n int) {
		for range n {
			if err := w.PublishFrame("x", "", nil, []byte("m")); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(2)
	s.shmDetachAll(true)
	publish(3)
	s.shmDetachAll(true)
	if to := r.drainTo.Load(); to != 2 {
		t.Fatalf("after a second drain the drain ends at %d, want 2 (where the first began)", to)
	}
}

// newRing makes a ring of 8 slots of 64 bytes and its writer.
func newRing(t *testing.T, name string) (*shm.Region, *shm.Writer) {
	t.Helper()
	region, err := shm.Create(name, 8, 64)
	if err != nil {
		t.Fatal(err)
	}
	w, err := region.Writer()
	if err != nil {
		t.Fatal(err)
	}
	return region, w
}

// directSub returns a SubscribeSync subscription on subject "x" of a bare
// Conn, reading region from sequence 0 with a cursor attached, as
// shmAttach sets one up; dropRingLocked closes the region and cursor.
func directSub(t *testing.T, region *shm.Region) (*Conn, *Subscription, *subRing) {
	t.Helper()
	rd, err := region.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	rd.Seek(0)
	cur, err := shm.CreateCursor("sb-drain-cursor")
	if err != nil {
		t.Fatal(err)
	}
	rd.AttachCursor(cur)
	c := &Conn{opts: Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	s := &Subscription{conn: c, kind: kindSync, Subject: "x", kick: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r := &subRing{id: 1, pattern: "x", region: region, cur: cur, rd: rd, ctx: ctx, cancel: cancel, direct: true}
	s.rings = []*subRing{r}
	s.ringsChangedLocked()
	return c, s, r
}
