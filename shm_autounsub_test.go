package switchboard_test

import (
	"context"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"switchboard"
)

// TestShmAutoUnsubscribe: a subscription whose AutoUnsubscribe count is
// reached through ring messages (which the hub does not count) gets
// exactly that many messages, and the hub drops the subscription (the
// client tells it), for a callback subscription and for a SubscribeSync
// one read with NextView and with NextMsg.
func TestShmAutoUnsubscribe(t *testing.T) {
	for _, mode := range []string{"callback", "view", "msg"} {
		t.Run(mode, func(t *testing.T) {
			sh := startShmHub(t, 1<<20)
			sub := shmConnect(t, sh.unix, nil)
			pub := shmConnect(t, sh.unix, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			base := sh.h.Stats().Subscriptions
			const max = 5
			var got atomic.Int64
			var s *switchboard.Subscription
			var err error
			if mode == "callback" {
				s, err = sub.Subscribe("auto.unsub", func(*switchboard.Msg) { got.Add(1) })
			} else {
				s, err = sub.SubscribeSync("auto.unsub")
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := s.AutoUnsubscribe(max); err != nil {
				t.Fatal(err)
			}
			if err := sub.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			// The first publish goes over the socket (and uses up one of
			// the count) and gets the hub to offer the publisher a ring.
			var buf [8]byte
			if err := pub.Publish("auto.unsub", buf[:]); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a ring", func() bool { return switchboard.ShmWriting(pub) > 0 })
			before := switchboard.ShmOut(pub)
			for i := 1; i < 3*max; i++ {
				binary.LittleEndian.PutUint64(buf[:], uint64(i))
				if err := pub.Publish("auto.unsub", buf[:]); err != nil {
					t.Fatal(err)
				}
			}
			if err := pub.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if switchboard.ShmOut(pub)-before == 0 {
				t.Fatal("nothing went through a ring: the test would not test rings")
			}
			switch mode {
			case "callback":
				waitFor(t, "5 messages", func() bool { return got.Load() >= max })
			default:
				for i := range max {
					if mode == "view" {
						v, err := s.NextView(ctx)
						if err != nil {
							t.Fatalf("view %d: %v", i, err)
						}
						v.Release()
					} else if _, err := s.NextMsg(ctx); err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
				}
				short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				_, err := s.NextMsg(short)
				cancel()
				if !errors.Is(err, switchboard.ErrBadSubscription) {
					t.Fatalf("after %d messages: %v, want the subscription ended", max, err)
				}
			}
			waitFor(t, "the hub to drop the subscription", func() bool { return sh.h.Stats().Subscriptions == base })
			time.Sleep(50 * time.Millisecond) // anything more would arrive now
			if n := got.Load(); mode == "callback" && n != max {
				t.Fatalf("%d messages delivered, want %d", n, max)
			}
		})
	}
}

// TestShmAutoUnsubscribeWhileHoldingView: a SubscribeSync caller holds a
// View from a ring and calls AutoUnsubscribe with a count the views it
// took already reach, so the subscription ends at once. Its rings must be
// detached without waiting for the View (which holds the ring until
// Release): on one goroutine, the natural use, that wait was a deadlock
// (found in review). Here AutoUnsubscribe runs on another goroutine so
// that the test can release the View and report.
func TestShmAutoUnsubscribeWhileHoldingView(t *testing.T) {
	s, held, n := holdRingView(t, "auto.view")
	returnsWhileHeld(t, held, "AutoUnsubscribe", func() error { return s.AutoUnsubscribe(n) })
}
