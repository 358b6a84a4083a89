package switchboard

// White-box tests of NextViews (shmbatch.go).

import (
	"context"
	"sync/atomic"
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

// TestTornRejectedCountedOnce: a writer that does not wait for the
// subscription laps it with frames its pattern rejects (subject "y" on a
// ring for "x"). Each message is lost exactly once (lapped, or read and
// rejected), so Dropped plus what the reader has not reported yet must
// equal what was published, reading with NextViews' pollViews or with
// NextView's pollView. pollViews counted a rejected frame whose Release
// found it overwritten twice: once as rejected, once more from the
// reader's Torn count at the end of the batch. Found in review.
func TestTornRejectedCountedOnce(t *testing.T) {
	for _, batch := range []bool{true, false} {
		name := "pollView"
		if batch {
			name = "pollViews"
		}
		t.Run(name, func(t *testing.T) { tornRejectedCountedOnce(t, batch) })
	}
}

func tornRejectedCountedOnce(t *testing.T, batch bool) {
	region, w := newRing(t, "sb-torn-rejected")
	_, s, r := directSub(t, region)
	var stop atomic.Bool
	done := make(chan uint64)
	go func() {
		n := uint64(0)
		for !stop.Load() {
			if err := w.PublishFrame("y", "", nil, []byte("0123456789abcdef0123456789")); err != nil {
				panic(err)
			}
			n++
		}
		done <- n
	}()
	called := 0
	fn := func(*View) { called++ }
	poll := func() {
		if batch {
			s.pollViews(64, fn)
		} else if v := s.pollView(); v != nil {
			called++
		}
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end) && r.rd.Stats().Torn < 20; {
		poll()
	}
	stop.Store(true)
	n := <-done
	for r.rd.Pos() < region.Stats().WriteSeq {
		poll()
	}
	if called != 0 {
		t.Fatalf("%d views of rejected frames", called)
	}
	torn := r.rd.Stats().Torn
	got := uint64(s.Dropped()) + r.rd.Unreported()
	t.Logf("published %d, dropped %d, unreported %d, torn %d", n, s.Dropped(), r.rd.Unreported(), torn)
	if got != n {
		t.Fatalf("published %d, but dropped %d + unreported %d = %d (torn %d)", n, s.Dropped(), r.rd.Unreported(), got, torn)
	}
	if torn == 0 {
		t.Log("no rejected frame was torn this run: only the lapped ones were checked")
	}
}
