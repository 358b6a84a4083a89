package switchboard_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"switchboard"
)

// TestNextViewsRing: 300 messages through a ring come out of NextViews in
// order, in batches of at most the max asked for, each View valid inside
// the callback and released by NextViews; the ring is free for NextView
// afterwards, and the connection counts every message once.
func TestNextViewsRing(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	sub, pub, s := ringPair(t, sh.unix, "batch.ring", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n, max = 300, 32
	before := sub.Stats().InMsgs
	// More than the ring's 64 slots: the publisher waits for the reader.
	go publishSeqAsync(t, pub, "batch.ring", 0, n)
	next, calls := 0, 0
	for next < n {
		got, err := s.NextViews(ctx, max, func(v *switchboard.View) {
			if v.Subject != "batch.ring" || len(v.Data) != 8 {
				t.Fatalf("view %q with %d bytes", v.Subject, len(v.Data))
			}
			if i := binary.LittleEndian.Uint64(v.Data); i != uint64(next) {
				t.Fatalf("message %d, want %d", i, next)
			}
			next++
		})
		if err != nil {
			t.Fatal(err)
		}
		if got < 1 || got > max {
			t.Fatalf("a batch of %d, want 1..%d", got, max)
		}
		calls++
	}
	if next != n {
		t.Fatalf("%d messages, want %d", next, n)
	}
	if calls == n {
		t.Log("every batch held one message (the publisher never got ahead)")
	}
	// InMsgs also counts the hub's shared-memory control messages, one of
	// which may come in meanwhile (the attach of the ring, say).
	if got := sub.Stats().InMsgs - before; got < n || got > n+2 {
		t.Fatalf("InMsgs grew by %d, want %d (or up to 2 more)", got, n)
	}
	if s.Dropped() != 0 {
		t.Fatalf("%d dropped", s.Dropped())
	}
	// The ring was let go of: NextView reads the next message.
	publishSeq(t, pub, "batch.ring", n, 1)
	v, err := s.NextView(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := binary.LittleEndian.Uint64(v.Data); i != n || !v.Release() {
		t.Fatalf("NextView after the batches: message %d", i)
	}
}

// TestNextViewsReleaseInside: a callback that releases its View learns it
// was intact, and a second Release is a no-op; NextViews goes on with the
// next message of the same ring.
func TestNextViewsReleaseInside(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	_, pub, s := ringPair(t, sh.unix, "batch.release", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	publishSeq(t, pub, "batch.release", 0, 10)
	seen := 0
	for seen < 10 {
		if _, err := s.NextViews(ctx, 10, func(v *switchboard.View) {
			if i := binary.LittleEndian.Uint64(v.Data); i != uint64(seen) {
				t.Fatalf("message %d, want %d", i, seen)
			}
			if !v.Release() || !v.Release() {
				t.Fatal("Release of an intact view reported false")
			}
			seen++
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNextViewsSocket: messages that came over the socket (a publisher
// with shared memory off) are passed as copies, in order; this runs
// against nats-server too.
func TestNextViewsSocket(t *testing.T) {
	ts := startServer(t)
	sub := connect(t, ts.URL(), nil)
	pub := connect(t, ts.URL(), &switchboard.Options{NoSharedMemory: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := sub.SubscribeSync("batch.socket")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 50
	publishSeq(t, pub, "batch.socket", 0, n)
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var kept []*switchboard.View
	next := 0
	for next < n {
		if _, err := s.NextViews(ctx, 7, func(v *switchboard.View) {
			if i := binary.LittleEndian.Uint64(v.Data); i != uint64(next) {
				t.Fatalf("message %d, want %d", i, next)
			}
			kept = append(kept, v)
			next++
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !kept[0].Release() {
		t.Fatal("Release of a copy after its batch reported false")
	}
}

// TestNextViewsErrors: a max below 1, a nil callback and a subscription
// that is not SubscribeSync are refused; a deadline with nothing to read ends the
// wait with the ctx's error and no message.
func TestNextViewsErrors(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	s, err := nc.SubscribeSync("batch.errors")
	if err != nil {
		t.Fatal(err)
	}
	fn := func(*switchboard.View) { t.Fatal("a message out of nowhere") }
	// A bad argument, not a subscription that ended: a reader loop that
	// stops at ErrBadSubscription would take a computed max of 0 for the
	// end.
	if _, err := s.NextViews(context.Background(), 0, fn); !errors.Is(err, switchboard.ErrBadArgument) || errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("max 0: %v", err)
	}
	if _, err := s.NextViews(context.Background(), 1, nil); !errors.Is(err, switchboard.ErrBadArgument) {
		t.Fatalf("nil callback: %v", err)
	}
	cb, err := nc.Subscribe("batch.errors.cb", func(*switchboard.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.NextViews(context.Background(), 1, fn); !errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("callback subscription: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if n, err := s.NextViews(ctx, 8, fn); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("nothing to read: %d, %v", n, err)
	}
}

// TestNextViewsAutoUnsubscribe: with AutoUnsubscribe(5) and 14 messages
// in a ring, NextViews passes exactly the 5 (the first over the socket,
// four from the ring) and then says the subscription ended.
func TestNextViewsAutoUnsubscribe(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	sub := shmConnect(t, sh.unix, nil)
	pub := shmConnect(t, sh.unix, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := sub.SubscribeSync("batch.auto")
	if err != nil {
		t.Fatal(err)
	}
	const max = 5
	if err := s.AutoUnsubscribe(max); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	publishSeq(t, pub, "batch.auto", 0, 1) // over the socket; gets the publisher a ring
	waitFor(t, "a ring", func() bool { return switchboard.ShmWriting(pub) > 0 })
	before := switchboard.ShmOut(pub)
	publishSeq(t, pub, "batch.auto", 1, 14)
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if switchboard.ShmOut(pub)-before == 0 {
		t.Fatal("nothing went through a ring: the test would not test rings")
	}
	var got []uint64
	for {
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.NextViews(short, 100, func(v *switchboard.View) {
			got = append(got, binary.LittleEndian.Uint64(v.Data))
		})
		cancel()
		if errors.Is(err, switchboard.ErrBadSubscription) {
			break
		}
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
	}
	if len(got) != max {
		t.Fatalf("messages %v, want %d", got, max)
	}
	for i, v := range got {
		if v != uint64(i) {
			t.Fatalf("messages %v, want 0..%d in order", got, max-1)
		}
	}
}

// TestNextViewsUnsubscribeInside: a callback that unsubscribes while its
// batch holds the ring does not deadlock (the ring is marked lent out, so
// the unsubscribe leaves its unmapping to the batch), the batch ends, and
// the subscription is over.
func TestNextViewsUnsubscribeInside(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	_, pub, s := ringPair(t, sh.unix, "batch.unsub", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	publishSeq(t, pub, "batch.unsub", 0, 20)
	done := make(chan error, 1)
	go func() {
		_, err := s.NextViews(ctx, 100, func(v *switchboard.View) {
			if err := s.Unsubscribe(); err != nil && !errors.Is(err, switchboard.ErrBadSubscription) {
				t.Errorf("unsubscribe: %v", err)
			}
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the batch: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("NextViews did not return after its callback unsubscribed")
	}
	waitFor(t, "the ring detached", func() bool { return switchboard.ShmReading(s) == 0 })
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := s.NextViews(short, 1, func(*switchboard.View) {}); !errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("after Unsubscribe: %v", err)
	}
}

// TestNextViewsTwoRings: messages of two publishers, each through its own
// ring, all come out of NextViews, each publisher's in order.
func TestNextViewsTwoRings(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	sub := shmConnect(t, sh.unix, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := sub.SubscribeSync("batch.two.*")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pubs := []*switchboard.Conn{shmConnect(t, sh.unix, nil), shmConnect(t, sh.unix, nil)}
	subjects := []string{"batch.two.a", "batch.two.b"}
	for i, p := range pubs {
		publishSeq(t, p, subjects[i], 0, 1)
		waitFor(t, "a ring", func() bool { return switchboard.ShmWriting(p) > 0 })
	}
	waitFor(t, "two rings", func() bool { return switchboard.ShmReading(s) == 2 })
	const n = 200
	for i, p := range pubs {
		go publishSeqAsync(t, p, subjects[i], 1, n-1)
	}
	next := map[string]uint64{}
	for total := 0; total < 2*n; {
		got, err := s.NextViews(ctx, 64, func(v *switchboard.View) {
			i := binary.LittleEndian.Uint64(v.Data)
			if i != next[v.Subject] {
				t.Fatalf("%s: message %d, want %d", v.Subject, i, next[v.Subject])
			}
			next[v.Subject]++
		})
		if err != nil {
			t.Fatal(err)
		}
		total += got
	}
	if next[subjects[0]] != n || next[subjects[1]] != n {
		t.Fatalf("counts %v, want %d each", next, n)
	}
}

// publishSeqAsync is publishSeq for a goroutine of its own: it reports a
// failure with Errorf.
func publishSeqAsync(t *testing.T, nc *switchboard.Conn, subj string, from, n int) {
	for i := from; i < from+n; i++ {
		if err := nc.Publish(subj, binary.LittleEndian.AppendUint64(nil, uint64(i))); err != nil {
			t.Errorf("publish %d: %v", i, err)
			return
		}
	}
}

// TestShmPublishSubjectChecks: Publish's fast path skips checking a
// subject that is the literal subject of one of the Conn's rings (checked
// when the ring came), and Publish still refuses bad subjects next to it:
// one with a space, an empty token, a wildcard, and the ring's subject
// with a suffix.
func TestShmPublishSubjectChecks(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	_, pub, s := ringPair(t, sh.unix, "batch.subj", nil)
	for _, bad := range []string{"batch.subj x", "batch..subj", "batch.*", "batch.subj.", "batch.subj\r\n"} {
		if err := pub.Publish(bad, []byte("x")); !errors.Is(err, switchboard.ErrBadSubject) {
			t.Errorf("Publish(%q) = %v, want ErrBadSubject", bad, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := switchboard.ShmOut(pub)
	if err := pub.Publish("batch.subj", []byte("ok")); err != nil {
		t.Fatal(err)
	}
	v, err := s.NextView(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Data) != "ok" || !v.Release() {
		t.Fatalf("got %q", v.Data)
	}
	if switchboard.ShmOut(pub) == before {
		t.Fatal("the good subject did not go through the ring")
	}
}

// TestShmPublishOverlappingRings: a publisher with a ring for "fast.x"
// (one subscriber's) and one for "fast.*" (another's) writes a message
// on fast.x into both, so each subscriber gets every message once, and
// fast.y only into the second. Publish's fast path (one ring, found
// without looking further) must not take fast.x: another ring matches it.
func TestShmPublishOverlappingRings(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	subs := map[string]*switchboard.Subscription{}
	for _, pattern := range []string{"fast.x", "fast.*"} {
		nc := shmConnect(t, sh.unix, nil)
		s, err := nc.SubscribeSync(pattern)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		subs[pattern] = s
	}
	pub := shmConnect(t, sh.unix, nil)
	publishSeq(t, pub, "fast.x", 0, 1) // over the socket: gets the publisher both rings
	waitFor(t, "two rings", func() bool { return switchboard.ShmWriting(pub) == 2 })
	for _, s := range subs {
		waitFor(t, "the ring attached", func() bool { return switchboard.ShmReading(s) == 1 })
	}
	before := switchboard.ShmOut(pub)
	const n = 40
	publishSeq(t, pub, "fast.x", 1, n-1)
	publishSeq(t, pub, "fast.y", 0, 1)
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := switchboard.ShmOut(pub) - before; got != 2*(n-1)+1 {
		t.Fatalf("%d messages written into rings, want %d", got, 2*(n-1)+1)
	}
	for pattern, s := range subs {
		for i := range n {
			m, err := s.NextMsg(ctx)
			if err != nil {
				t.Fatalf("%s: message %d: %v", pattern, i, err)
			}
			if m.Subject != "fast.x" || binary.LittleEndian.Uint64(m.Data) != uint64(i) {
				t.Fatalf("%s: got %s %x, want fast.x %d", pattern, m.Subject, m.Data, i)
			}
		}
		if pattern == "fast.*" {
			m, err := s.NextMsg(ctx)
			if err != nil || m.Subject != "fast.y" {
				t.Fatalf("%s: after fast.x: %v %v, want fast.y", pattern, m, err)
			}
		}
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		if m, err := s.NextMsg(short); err == nil {
			t.Fatalf("%s: an extra message %s %x", pattern, m.Subject, m.Data)
		}
		cancel()
	}
}
