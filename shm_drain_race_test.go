package switchboard_test

// Drain and a lost connection against concurrent readers, held Views and
// live publishers. Each of these failed on the first version of the fix
// that makes Drain keep what the rings hold (a review found them).

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard"
	"switchboard/auth"
	"switchboard/hub"
	"switchboard/internal/proctest"
)

// TestShmDrainSyncHeldViewNotEndedEarly (deterministic): a
// SubscribeSync subscription with one caller holding a ring View and
// another calling NextMsg. Drain defers the ring's drain to Release, but
// finish() has made the subscription "finishing" already, so the other
// caller's NextMsg returns ErrBadSubscription at once; Release then
// queues the ring's messages, which NextMsg had said were not there.
func TestShmDrainSyncHeldViewNotEndedEarly(t *testing.T) {
	pub, sub, warm := shmDrainSetup(t, "rv.held", syncSub(t, "rv.held"))
	const n = 40
	publishSeq(t, pub, "rv.held", warm, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var held *switchboard.View
	for {
		v, err := sub.NextView(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if switchboard.ViewInRing(v) {
			held = v
			break
		}
		v.Release()
	}
	if err := sub.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := sub.NextMsg(short)
		errc <- err
	}()
	err := <-errc
	held.Release()
	pending, _ := sub.Pending()
	if errors.Is(err, switchboard.ErrBadSubscription) && pending > 0 {
		t.Fatalf("NextMsg on another goroutine returned ErrBadSubscription, then Release queued %d more messages", pending)
	}
	t.Logf("NextMsg: %v; pending after Release: %d", err, pending)
}

// TestShmDrainSyncConcurrentNextMsg (timing): one goroutine reads with
// NextMsg until ErrBadSubscription while a publisher keeps the ring full;
// the test goroutine Drains. finish() sets finishing before
// shmDetachAll(true) moves the ring's messages into the queue, so the
// reader sees an empty queue and "finishing" and stops; the messages the
// drain queues afterwards are never read and never counted.
func TestShmDrainSyncConcurrentNextMsg(t *testing.T) {
	bad := 0
	const rounds = 10
	for round := range rounds {
		pub, sub, warm := shmDrainSetup(t, "rv.conc", syncSub(t, "rv.conc"))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // publisher: keeps the blocking ring full
			defer wg.Done()
			buf := make([]byte, 8)
			for i := 0; !stop.Load(); i++ {
				binary.LittleEndian.PutUint64(buf, uint64(warm+i))
				if pub.Publish("rv.conc", buf) != nil {
					return
				}
			}
		}()
		var got, slow atomic.Int64
		var endErr error
		go func() { // reader
			defer wg.Done()
			for {
				_, err := sub.NextMsg(ctx)
				if errors.Is(err, switchboard.ErrSlowConsumer) {
					slow.Add(1)
					continue
				}
				if err != nil {
					endErr = err
					return
				}
				got.Add(1)
			}
		}()
		waitFor(t, "some messages", func() bool { return got.Load() > 200 })
		if err := sub.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		stop.Store(true)
		wg.Wait()
		cancel()
		pending, _ := sub.Pending()
		if !errors.Is(endErr, switchboard.ErrBadSubscription) {
			t.Fatalf("round %d: reader ended with %v", round, endErr)
		}
		if pending > 0 {
			bad++
			t.Logf("round %d: NextMsg said ErrBadSubscription with %d messages still to be queued (got %d)", round, pending, got.Load())
		}
		if slow.Load() > 0 {
			t.Logf("round %d: ErrSlowConsumer seen, Dropped %d", round, sub.Dropped())
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d rounds lost messages queued after NextMsg had reported the end", bad, rounds)
	}
}

// serveHubAt runs an open-policy hub on the unix socket sock; the returned
// stop closes it (and unlinks sock) so that another can take its place.
func serveHubAt(t *testing.T, sock string) (*hub.Hub, func()) {
	t.Helper()
	pol, err := auth.Parse("open", []byte(proctest.OpenPolicy))
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Config{MaxPayload: 1 << 16, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Serve(context.Background(), ul) }()
	var once sync.Once
	stop := func() { once.Do(func() { h.Close(); <-done }) }
	t.Cleanup(stop)
	return h, stop
}

// TestShmLostDrainReachesCount: a SubscribeSync subscription
// with an AutoUnsubscribe count loses its connection while its ring holds
// more messages than the count leaves. shmLost -> shmDetachAll(true) ->
// detachRingLocked queues them and stops at the last one, but nobody calls
// endCounted (the pump does, in the same situation, for callback
// subscriptions; deliverMsg does for the socket). The subscription stays
// live: it is re-subscribed on the new connection without a count (resume
// sends an UNSUB max only when max > base), NextMsg never reports the end,
// and IsValid stays true.
func TestShmLostDrainReachesCount(t *testing.T) {
	dir, err := os.MkdirTemp("", "sbrv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "hub.sock")
	_, stop1 := serveHubAt(t, sock)
	url := "unix://" + sock

	sc, err := switchboard.Connect(context.Background(), url, &switchboard.Options{
		ReconnectWait: 5 * time.Millisecond, MaxReconnectWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	pub := shmConnect(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	s, err := sc.SubscribeSync("rv.lost")
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	warm := 0
	waitFor(t, "a ring", func() bool {
		if err := pub.Publish("rv.lost", buf); err != nil {
			t.Fatal(err)
		}
		warm++
		return switchboard.ShmWriting(pub) > 0 && switchboard.ShmReading(s) > 0
	})
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	const extra = 5
	max := warm + extra
	if err := s.AutoUnsubscribe(max); err != nil {
		t.Fatal(err)
	}
	before := switchboard.ShmOut(pub)
	for range 20 {
		if err := pub.Publish("rv.lost", buf); err != nil {
			t.Fatal(err)
		}
	}
	if switchboard.ShmOut(pub)-before != 20 {
		t.Fatalf("only %d of 20 went into the ring", switchboard.ShmOut(pub)-before)
	}

	stop1() // the connection is lost: shmLost drains the ring
	h2, _ := serveHubAt(t, sock)
	waitFor(t, "reconnect", func() bool { return sc.IsConnected() && sc.Stats().Reconnects > 0 })

	for i := range max {
		if _, err := s.NextMsg(ctx); err != nil {
			t.Fatalf("message %d of %d: %v", i, max, err)
		}
	}
	short, c2 := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = s.NextMsg(short)
	c2()
	if !errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("after the %d messages of the count: NextMsg %v (want ErrBadSubscription); IsValid %v; hub2 subscriptions %d",
			max, err, s.IsValid(), h2.Stats().Subscriptions)
	}
}

// TestShmDrainSyncLivePublisher: a SubscribeSync subscription nobody
// reads, a publisher blocked on its full (blocking) ring that holds 64
// messages published before Drain. Drain gets every one of them. The hub
// used to tell the publisher to stop waiting for the subscriber's cursor
// as soon as the UNSUB came, before the subscriber had emptied the ring,
// and the publisher lapped it: 1 to 6 of the 65 messages arrived in every
// round. Now the hub waits for the subscriber's DETACHED.
func TestShmDrainSyncLivePublisher(t *testing.T) {

	bad := 0
	const rounds = 5
	for round := range rounds {
		pub, sub, warm := shmDrainSetup(t, "rv.lap", syncSub(t, "rv.lap"))
		var stop atomic.Bool
		var published atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 8)
			for i := 0; !stop.Load(); i++ {
				binary.LittleEndian.PutUint64(buf, uint64(warm+i))
				if pub.Publish("rv.lap", buf) != nil {
					return
				}
				published.Add(1)
			}
		}()
		// The ring fills up and the publisher waits for us.
		waitFor(t, "a full ring", func() bool {
			n := published.Load()
			time.Sleep(20 * time.Millisecond)
			return n > 0 && published.Load() == n
		})
		before := uint64(warm) + uint64(published.Load()) // seqs below this were published before Drain
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := sub.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		stop.Store(true)
		<-done
		var old, later int
		for {
			m, err := sub.NextMsg(ctx)
			if errors.Is(err, switchboard.ErrSlowConsumer) {
				continue
			}
			if err != nil {
				break
			}
			if binary.LittleEndian.Uint64(m.Data) < before {
				old++
			} else {
				later++
			}
		}
		cancel()
		if uint64(old) != before {
			bad++
			t.Logf("round %d: got %d of the %d messages published before Drain, and %d published during it; Dropped %d",
				round, old, before, later, sub.Dropped())
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d rounds lost messages the ring held when Drain was called", bad, rounds)
	}
}
