package switchboard_test

import (
	"context"
	"testing"
	"time"

	"switchboard"
)

// TestShmNextViewWhileHoldingRingView: a SubscribeSync caller holds a
// View in place in its only ring and calls NextView again with a 300 ms
// ctx (an unreleased previous View is allowed). The ring is lent out, so
// NextView must not set a watcher on it (which would wait for the View's
// Release, and NextView for the watcher, for ever): it must end with its
// ctx. (Found in review.)
func TestShmNextViewWhileHoldingRingView(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	sub := shmConnect(t, sh.unix, nil)
	pub := shmConnect(t, sh.unix, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := sub.SubscribeSync("rv2.view")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("rv2.view", []byte("first")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a ring", func() bool { return switchboard.ShmWriting(pub) > 0 })
	for range 5 {
		if err := pub.Publish("rv2.view", []byte("ring")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var held *switchboard.View
	for range 6 {
		v, err := s.NextView(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if switchboard.ViewInRing(v) {
			held = v
			break
		}
		v.Release()
	}
	if held == nil {
		t.Skip("no message came through the ring")
	}
	done := make(chan error, 1)
	go func() {
		c2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel2()
		v, err := s.NextView(c2)
		if err == nil {
			v.Release()
		}
		done <- err
	}()
	select {
	case err := <-done:
		held.Release()
		t.Logf("second NextView returned: %v", err)
	case <-time.After(3 * time.Second):
		held.Release() // unblocks it; on one goroutine nothing would
		<-done
		t.Errorf("NextView with a 300 ms ctx did not return in 3 s while a ring View was held (watcher blocked on r.mu)")
	}
}
