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
	s, held, _ := holdRingView(t, "viewhold.view")
	returnsWhileHeld(t, held, "NextView with a 300 ms ctx", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		v, err := s.NextView(ctx)
		if err == nil {
			v.Release()
		}
		return err
	})
}

// holdRingView starts a hub, subscribes to subj (SubscribeSync), gets a
// publisher to write subj through a ring, and returns the subscription, a
// View held in place in that ring, and how many messages NextView
// returned, that one included.
func holdRingView(t *testing.T, subj string) (*switchboard.Subscription, *switchboard.View, int) {
	t.Helper()
	sh := startShmHub(t, 1<<20)
	sub := shmConnect(t, sh.unix, nil)
	pub := shmConnect(t, sh.unix, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := sub.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(subj, []byte("first")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a ring", func() bool { return switchboard.ShmWriting(pub) > 0 })
	for range 20 {
		if err := pub.Publish(subj, []byte("ring")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 21; n++ {
		v, err := s.NextView(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if switchboard.ViewInRing(v) {
			return s, v, n
		}
		v.Release()
	}
	t.Fatal("no message came through the ring")
	return nil, nil, 0
}

// returnsWhileHeld runs f on another goroutine while held stays
// unreleased, and fails the test if f has not returned within 3 s; it
// releases held either way (which unblocks a stuck f: on one goroutine,
// the natural use, nothing would).
func returnsWhileHeld(t *testing.T, held *switchboard.View, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		held.Release()
		t.Logf("%s with a ring View held: %v", what, err)
	case <-time.After(3 * time.Second):
		held.Release()
		<-done
		t.Errorf("%s blocked for 3 s while the caller held a ring View", what)
	}
}
