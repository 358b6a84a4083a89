package switchboard_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"switchboard"
)

// TestShmCountReachedHeldViewNextMsg: a SubscribeSync caller holds a
// View in place in its ring and calls AutoUnsubscribe with a count its
// views reached already (the natural single-goroutine use that
// TestShmAutoUnsubscribeWhileHoldingView protects). The subscription
// takes nothing more, so the lent ring has nothing to give it: NextMsg on
// the same goroutine returns ErrBadSubscription at once. (A first version
// of the drain fix waited for that ring's Release, for ever without a
// deadline; a review found it.)
func TestShmCountReachedHeldViewNextMsg(t *testing.T) {
	s, held, n := holdRingView(t, "rv2.auto")
	defer held.Release()
	if err := s.AutoUnsubscribe(n); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.NextMsg(ctx)
	if !errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("count reached, View held on this goroutine: NextMsg returned %v after %v, want ErrBadSubscription at once",
			err, time.Since(start).Round(time.Millisecond))
	}
}
