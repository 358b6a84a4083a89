package switchboard_test

import (
	"context"
	"testing"
	"time"

	"switchboard"
	"switchboard/shm"
)

// TestShmSyncSpinSettles: a SubscribeSync subscription whose ring
// messages come 50 ms apart, far beyond any spin, sleeps in every wait,
// so its spin budget halves down to shm.MinSpin, with NextMsg as with
// NextView. (NextMsg once left a stale kick behind each message, which
// the next wait counted as a find: the budget swung between 25 and 50 µs
// and the probes never came.)
func TestShmSyncSpinSettles(t *testing.T) {
	for _, view := range []bool{false, true} {
		name := "NextMsg"
		if view {
			name = "NextView"
		}
		t.Run(name, func(t *testing.T) {
			sh := startShmHub(t, 1<<20)
			_, pub, s := ringPair(t, sh.unix, "spin.settle", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			next := func() {
				t.Helper()
				if !view {
					if _, err := s.NextMsg(ctx); err != nil {
						t.Fatal(err)
					}
					return
				}
				v, err := s.NextView(ctx)
				if err != nil {
					t.Fatal(err)
				}
				v.Release()
			}
			buf := make([]byte, 16)
			out := switchboard.ShmOut(pub)
			const waits = 12 // not a multiple of 8: no probe due at the end
			go func() {
				for range waits {
					time.Sleep(50 * time.Millisecond)
					if err := pub.Publish("spin.settle", buf); err != nil {
						return
					}
				}
			}()
			for range waits {
				next()
			}
			if n := switchboard.ShmOut(pub) - out; n < waits {
				t.Fatalf("%d of %d messages went by ring", n, waits)
			}
			if b := switchboard.SubSpinBudget(s); b != shm.MinSpin {
				t.Fatalf("after %d waits that each had to sleep: spin budget %v, want %v", waits, b, shm.MinSpin)
			}
		})
	}
}
