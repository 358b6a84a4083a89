package switchboard

// White-box tests of NextViews (shmbatch.go).

import (
	"context"
	"testing"
	"time"
)

// TestNextViewsPanicInSpin: fn runs inside waitFor's spin (the poll
// closure), between acquireSpin and releaseSpin. A fn that panics while
// the spin found its message must give the process-wide spinner slot back
// (it leaked, until releaseSpin was deferred: after GOMAXPROCS such
// panics no NextMsg, NextView or NextViews of the process spun again) and
// let go of the ring (unlocked, not lent out). Found in review.
func TestNextViewsPanicInSpin(t *testing.T) {
	region, w := newRing(t, "sb-review-spin")
	_, s, r := directSub(t, region)
	base := ringSpinners.Load()
	for try := 0; try < 20; try++ {
		published := make(chan struct{})
		go func() {
			defer close(published)
			// Publish as soon as the reader spins (its first poll found
			// nothing): the message is found by spinFor's poll.
			deadline := time.Now().Add(2 * time.Second)
			for ringSpinners.Load() == base && time.Now().Before(deadline) {
			}
			w.PublishFrame("x", "", nil, []byte("boom"))
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		func() {
			defer func() { recover() }()
			s.NextViews(ctx, 8, func(*View) { panic("fn panics") })
		}()
		cancel()
		<-published // one writer at a time
		if !r.mu.TryLock() {
			t.Fatal("ring left locked after a panicking fn")
		}
		lent := r.viewOut.Load()
		r.mu.Unlock()
		if lent {
			t.Fatal("ring left lent out after a panicking fn")
		}
		if got := ringSpinners.Load(); got != base {
			t.Fatalf("try %d: ringSpinners = %d after a fn panicked inside the spin, want %d: the spinner slot leaked (maxRingSpinners = %d)", try, got, base, maxRingSpinners)
		}
	}
}
