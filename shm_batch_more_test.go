package switchboard_test

// More tests of NextViews (shmbatch.go), several from a review: callbacks
// that drain, close or auto-unsubscribe; drop accounting; two readers of
// one subscription.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard"
)

// TestConcurrentSocketReaders: two goroutines read one SubscribeSync
// subscription (socket only) with NextViews, or with NextView; each
// message is seen exactly once. The View of a copy used to be reused when
// its done flag, written by its holder without the lock, said it was
// released: two callers could be handed the same View, so one saw the
// other's message (duplicated, the other lost), and -race reported the
// writes. Found in review.
func TestConcurrentSocketReaders(t *testing.T) {
	for _, batch := range []bool{true, false} {
		name := "NextView"
		if batch {
			name = "NextViews"
		}
		t.Run(name, func(t *testing.T) { concurrentSocketReaders(t, batch) })
	}
}

func concurrentSocketReaders(t *testing.T, batch bool) {
	ts := startServer(t)
	sub := connect(t, ts.URL(), nil)
	pub := connect(t, ts.URL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := sub.SubscribeSync("review.conc")
	if err != nil {
		t.Fatal(err)
	}
	s.SetPendingLimits(-1, -1)
	flush(t, sub)
	const n = 20000
	var mu sync.Mutex
	seen := make([]int, n)
	record := func(v *switchboard.View) {
		i := binary.LittleEndian.Uint64(v.Data)
		mu.Lock()
		seen[i]++
		mu.Unlock()
	}
	read := func(ctx context.Context) (int, error) {
		if batch {
			return s.NextViews(ctx, 4, record)
		}
		v, err := s.NextView(ctx)
		if err != nil {
			return 0, err
		}
		record(v)
		v.Release()
		return 1, nil
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for total.Load() < n {
				short, c := context.WithTimeout(ctx, 500*time.Millisecond)
				k, err := read(short)
				c()
				total.Add(int64(k))
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					t.Error(err)
					return
				}
			}
		}()
	}
	publishSeq(t, pub, "review.conc", 0, n)
	flush(t, pub)
	wg.Wait()
	bad := 0
	for i, c := range seen {
		if c != 1 {
			if bad < 5 {
				t.Errorf("message %d seen %d times", i, c)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d messages not seen exactly once", bad, n)
	}
}

// TestNextViewsDrainInside: fn drains the subscription at the first
// message of a ring holding 20: the rest must still come out (queued at
// the end of the batch), in order, none dropped, then the end.
func TestNextViewsDrainInside(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	_, pub, s := ringPair(t, sh.unix, "review.drain", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	publishSeq(t, pub, "review.drain", 0, 20)
	flush(t, pub)
	var got []uint64
	drained := false
	for {
		short, c := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.NextViews(short, 100, func(v *switchboard.View) {
			got = append(got, binary.LittleEndian.Uint64(v.Data))
			if !drained {
				drained = true
				if err := s.Drain(ctx); err != nil {
					t.Errorf("drain: %v", err)
				}
			}
		})
		c()
		if errors.Is(err, switchboard.ErrBadSubscription) {
			break
		}
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
	}
	if len(got) != 20 || s.Dropped() != 0 {
		t.Fatalf("got %v (%d), dropped %d", got, len(got), s.Dropped())
	}
	for i, v := range got {
		if v != uint64(i) {
			t.Fatalf("out of order: %v", got)
		}
	}
}

// TestNextViewsCloseDuringBatch: Conn.Close from another goroutine
// while fn blocks returns at once (the ring is lent out), and the batch
// ends after fn with the ring detached; fn calling Close itself does not
// deadlock either.
func TestNextViewsCloseDuringBatch(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	for _, inside := range []bool{false, true} {
		sub, pub, s := ringPair(t, sh.unix, "review.close", nil)
		publishSeq(t, pub, "review.close", 0, 10)
		flush(t, pub)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		entered, unblock := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		calls := 0
		go func() {
			_, err := s.NextViews(ctx, 100, func(v *switchboard.View) {
				calls++
				if calls == 1 {
					if inside {
						sub.Close()
						return
					}
					close(entered)
					<-unblock
				}
			})
			done <- err
		}()
		if !inside {
			<-entered
			closed := make(chan struct{})
			go func() { sub.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				close(unblock)
				t.Fatal("Close waited for the batch's fn")
			}
			close(unblock)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("inside=%v: batch: %v", inside, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("inside=%v: NextViews did not return", inside)
		}
		if calls != 1 {
			t.Errorf("inside=%v: fn called %d times after Close in the first call", inside, calls)
		}
		waitFor(t, "ring detached", func() bool { return switchboard.ShmReading(s) == 0 })
		if _, err := s.NextViews(ctx, 1, func(*switchboard.View) {}); !errors.Is(err, switchboard.ErrClosed) {
			t.Errorf("inside=%v: after Close: %v", inside, err)
		}
		cancel()
	}
}

// TestNextViewsDropAccounting: with ShmDrop and a slow fn, every
// message published is either intact (Release true inside fn) or counted
// in Dropped, exactly once (batch is false: the same with NextView).
func TestNextViewsDropAccounting(t *testing.T) {
	for _, batch := range []bool{true, false} {
		dropAccounting(t, batch)
	}
}

func dropAccounting(t *testing.T, batch bool) {
	sh := startShmHub(t, 1<<20)
	_, pub, s := ringPair(t, sh.unix, "review.dropacct", &switchboard.Options{ShmDrop: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 5000
	out0 := switchboard.ShmOut(pub)
	pubDone := make(chan struct{})
	go func() { publishSeqAsync(t, pub, "review.dropacct", 0, n); close(pubDone) }()
	seen := map[uint64]int{}
	slow := func(v *switchboard.View) {
		i := binary.LittleEndian.Uint64(v.Data)
		for range 2000 {
			_ = v.Data[0]
		}
		if v.Release() {
			seen[i]++
		}
	}
	quiet := 0
	for quiet < 3 {
		short, c := context.WithTimeout(ctx, 200*time.Millisecond)
		var err error
		if batch {
			_, err = s.NextViews(short, 16, slow)
		} else {
			var v *switchboard.View
			if v, err = s.NextView(short); err == nil {
				slow(v)
			}
		}
		c()
		select {
		case <-pubDone:
			if errors.Is(err, context.DeadlineExceeded) {
				quiet++
			}
		default:
		}
		if err != nil && !errors.Is(err, switchboard.ErrSlowConsumer) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("after %d intact: %v", len(seen), err)
		}
	}
	for i, c := range seen {
		if c != 1 {
			t.Errorf("batch=%v: message %d intact %d times", batch, i, c)
		}
	}
	got := len(seen) + s.Dropped()
	msg := fmt.Sprintf("batch=%v: intact %d + dropped %d = %d, want %d (through rings: %d)", batch, len(seen), s.Dropped(), got, n, switchboard.ShmOut(pub)-out0)
	if got != n {
		t.Error(msg)
	} else {
		t.Log(msg)
	}
}

// TestNextViewsAutoUnsubscribeInside: fn sets an AutoUnsubscribe
// count that is reached already (the warm-up messages count) at the first
// of 20 ring messages: the batch stops after it, nothing more is passed,
// and the subscription ends.
func TestNextViewsAutoUnsubscribeInside(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	_, pub, s := ringPair(t, sh.unix, "review.auto", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	publishSeq(t, pub, "review.auto", 0, 20)
	flush(t, pub)
	total := 0
	for {
		short, c := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.NextViews(short, 100, func(v *switchboard.View) {
			total++
			if total == 1 {
				if err := s.AutoUnsubscribe(1); err != nil {
					t.Errorf("auto-unsubscribe: %v", err)
				}
			}
		})
		c()
		if errors.Is(err, switchboard.ErrBadSubscription) {
			break
		}
		if err != nil {
			t.Fatalf("after %d: %v", total, err)
		}
	}
	if total != 1 {
		t.Fatalf("%d messages passed after the count was reached in the first", total)
	}
}

// TestNextViewsSlowBatchNotDemoted: a blocking subscriber (ShmDrop off)
// reads a full 64-slot ring with NextViews(64) and spends 90 ms on each
// of the first 64 messages; the publisher has more to send. It must lose
// nothing, as with NextView: the publisher waits about 90 ms a message.
// NextViews used to publish the position only when its batch ended (5.8
// s), so the publisher's Loan timed out after shm.DefaultBlockTimeout (5
// s), demoted the subscriber to drop and lapped it (TestPollSlowBatch-
// NotDemoted in package shm is the same, faster). Found in review.
func TestNextViewsSlowBatchNotDemoted(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	_, pub, s := ringPair(t, sh.unix, "batch.slow", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	const n = 64 + 300
	publishSeq(t, pub, "batch.slow", 0, 64) // fills the ring
	go publishSeqAsync(t, pub, "batch.slow", 64, n-64)
	next := 0
	for next < n {
		_, err := s.NextViews(ctx, 64, func(v *switchboard.View) {
			i := int(binary.LittleEndian.Uint64(v.Data))
			if i != next {
				t.Errorf("message %d, want %d (%d dropped)", i, next, s.Dropped())
				next = i
			}
			if i < 64 {
				time.Sleep(90 * time.Millisecond)
			}
			next++
		})
		if err != nil {
			t.Fatalf("after %d: %v (dropped %d)", next, err, s.Dropped())
		}
	}
	if d := s.Dropped(); d != 0 {
		t.Fatalf("%d messages dropped by a blocking subscriber", d)
	}
}

// TestNextViewsSocketAfterUnsubscribe: copies from the socket are taken
// up to 64 at a time; a callback that unsubscribes at the first of 10
// queued ones gets no more (it got the other 9), as NextView returns
// ErrBadSubscription after Unsubscribe however many are queued, and a
// ring batch stops after the callback that unsubscribed. Found in review.
func TestNextViewsSocketAfterUnsubscribe(t *testing.T) {
	ts := startServer(t)
	sub := connect(t, ts.URL(), nil)
	pub := connect(t, ts.URL(), nil)
	s, err := sub.SubscribeSync("batch.unsubcopies")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, sub)
	for i := range 10 {
		if err := pub.Publish("batch.unsubcopies", binary.LittleEndian.AppendUint64(nil, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, pub)
	waitFor(t, "10 queued", func() bool { n, _ := s.Pending(); return n == 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	calls := 0
	n, err := s.NextViews(ctx, 64, func(v *switchboard.View) {
		calls++
		if calls == 1 {
			if err := s.Unsubscribe(); err != nil {
				t.Errorf("unsubscribe: %v", err)
			}
		}
	})
	t.Logf("NextViews = %d, %v", n, err)
	if calls != 1 {
		t.Fatalf("the callback got %d messages, %d after it unsubscribed", calls, calls-1)
	}
}
