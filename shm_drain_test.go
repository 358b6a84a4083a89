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

// shmDrainSetup connects a publisher and a subscriber Conn to a fresh hub
// and returns them once sub reads a ring the publisher writes into: what
// is published from then on goes through shared memory. It returns how
// many warm-up messages were published before.
func shmDrainSetup(t *testing.T, subj string, subscribe func(*switchboard.Conn) *switchboard.Subscription) (pub *switchboard.Conn, sub *switchboard.Subscription, warm int) {
	t.Helper()
	sh := startShmHub(t, 1<<16)
	pub, sc := shmConnect(t, sh.unix, nil), shmConnect(t, sh.unix, nil)
	sub = subscribe(sc)
	if err := sc.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	waitFor(t, "a ring between the two", func() bool {
		binary.LittleEndian.PutUint64(buf, uint64(warm))
		if err := pub.Publish(subj, buf); err != nil {
			t.Fatal(err)
		}
		warm++
		return switchboard.ShmWriting(pub) > 0 && switchboard.ShmReading(sub) > 0
	})
	return pub, sub, warm
}

// syncSub is a shmDrainSetup subscribe function: SubscribeSync on subj.
func syncSub(t *testing.T, subj string) func(*switchboard.Conn) *switchboard.Subscription {
	return func(nc *switchboard.Conn) *switchboard.Subscription {
		s, err := nc.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// publishSeq publishes n 8-byte messages numbered from first to subj.
func publishSeq(t *testing.T, pub *switchboard.Conn, subj string, first, n int) {
	t.Helper()
	buf := make([]byte, 8)
	for i := range n {
		binary.LittleEndian.PutUint64(buf, uint64(first+i))
		if err := pub.Publish(subj, buf); err != nil {
			t.Fatal(err)
		}
	}
}

// TestShmDrainCallbackDeliversRing: Drain of a callback subscription
// delivers what is still in its rings before it returns. The ring pump
// empties a detached ring after Drain began; the subscription's goroutine
// used to exit as soon as its queue was empty, and what the pump handed
// over later was lost without a word.
func TestShmDrainCallbackDeliversRing(t *testing.T) {
	for round := range 10 {
		var got atomic.Int64
		pub, sub, warm := shmDrainSetup(t, "drain.cb", func(nc *switchboard.Conn) *switchboard.Subscription {
			s, err := nc.Subscribe("drain.cb", func(*switchboard.Msg) { got.Add(1) })
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
		const n = 3000
		publishSeq(t, pub, "drain.cb", warm, n)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := sub.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if g, d := got.Load(), sub.Dropped(); g != int64(warm+n) {
			t.Fatalf("round %d: the callback got %d of %d messages (%d reported dropped)", round, g, warm+n, d)
		}
	}
}

// TestShmDrainSyncKeepsRing: after Drain, NextMsg still returns what the
// subscription's rings held, then ErrBadSubscription. Drain used to unmap
// the rings of a SubscribeSync subscription at once, with their unread
// messages.
func TestShmDrainSyncKeepsRing(t *testing.T) {
	pub, sub, warm := shmDrainSetup(t, "drain.sync", syncSub(t, "drain.sync"))
	// Fewer than the ring's 64 slots: the blocking ring takes them all
	// with nobody reading.
	const n = 40
	publishSeq(t, pub, "drain.sync", warm, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sub.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	next := uint64(0)
	for {
		m, err := sub.NextMsg(ctx)
		if errors.Is(err, switchboard.ErrBadSubscription) {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", next, err)
		}
		if got := binary.LittleEndian.Uint64(m.Data); got != next {
			t.Fatalf("message %d is %d", next, got)
		}
		next++
	}
	if next != uint64(warm+n) {
		t.Fatalf("NextMsg returned %d of %d messages after Drain (%d reported dropped)", next, warm+n, sub.Dropped())
	}
}

// TestShmEndedReaderReleased: the hub keeps a publisher waiting for the
// cursor of a subscription that ended while its connection lives on, until
// the subscriber says it has emptied and unmapped the ring (DETACHED); then
// the publisher stops tracking it. Whichever way the subscription ends,
// the publisher is told. It guards the handshake: without the client's
// DETACHED, the unsubscribe and drain cases time out.
func TestShmEndedReaderReleased(t *testing.T) {
	for _, end := range []string{"unsubscribe", "drain", "close"} {
		t.Run(end, func(t *testing.T) {
			var sc *switchboard.Conn
			pub, sub, _ := shmDrainSetup(t, "rel."+end, func(nc *switchboard.Conn) *switchboard.Subscription {
				sc = nc
				return syncSub(t, "rel."+end)(nc)
			})
			// The subscriber's cursor, and the hub's forwarder's own (the
			// hub attaches the subscriber before it tells the publisher).
			waitFor(t, "the publisher to track the cursor", func() bool { return switchboard.ShmTracked(pub) == 2 })
			const before = 2
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var err error
			switch end {
			case "unsubscribe":
				err = sub.Unsubscribe()
			case "drain":
				err = sub.Drain(ctx)
			case "close":
				sc.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the publisher to stop tracking the cursor", func() bool { return switchboard.ShmTracked(pub) == before-1 })
		})
	}
}
