package switchboard

// White-box tests of sleepRings (shmsleep.go).

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"switchboard/shm"
)

func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestShmSleepCancelledRingSleeps: Conn.close cancels c.ctx (so every
// subRing.ctx) long before it calls s.shut() (it flushes and writes the
// socket first, bounded only by DialTimeout). Meanwhile a ring whose ctx
// is done is still in s.rings, not gone, not lent out. A sleepRings that
// watched it (context.AfterFunc(r.ctx, w.Kick) fires at once) ended every
// sleep at once, and NextMsg spun at 100% CPU for the whole window; it
// skips such rings. The window is simulated by cancelling r.ctx without
// detaching the ring.
func TestShmSleepCancelledRingSleeps(t *testing.T) {
	region, err := shm.CreateUnsealed("sb-test-sleep", 8, 64)
	if err != nil {
		t.Fatal(err)
	}
	c, s, r := directSub(t, region)
	c.workers = map[*worker]struct{}{} // in case it falls back to watchRings
	r.cancel()                         // as c.cancel() in Conn.close, before s.shut()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cpu0 := cpuTime()
	_, err = s.NextMsg(ctx)
	cpu := cpuTime() - cpu0
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("NextMsg: %v", err)
	}
	kicks := uint32(0)
	if s.sleep.w != nil {
		kicks = s.sleep.w.Kicks()
	}
	t.Logf("300 ms NextMsg on a ring whose ctx is done: %v CPU, %d sleeps ended by the AfterFunc kick", cpu, kicks)
	if kicks > 100 || cpu > 100*time.Millisecond {
		t.Errorf("NextMsg spun while it should sleep: %v CPU in 300 ms, %d kicks", cpu, kicks)
	}
}
