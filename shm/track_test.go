package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitUntil polls cond until it holds; the 30 s bound only turns a hang
// into a failure, it is not a performance check.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// trackedPair is openPair with a cursor per reader, attached on the
// reader's side and added to the writer under ids 1, 2, ... with the
// given block policies.
func trackedPair(t *testing.T, slots, size int, block ...bool) (*Writer, []*Reader, []curPair) {
	t.Helper()
	w, rs := openPair(t, slots, size, len(block))
	var cs []curPair
	for i, r := range rs {
		c := cursorPair(t, fmt.Sprint("sb-test-cursor-", i))
		if err := r.AttachCursor(c.r); err != nil {
			t.Fatal(err)
		}
		if err := w.AddReader(uint64(i+1), c.w, block[i]); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return w, rs, cs
}

// TestWakeSkip checks the wake-up bookkeeping by counting FUTEX_WAKE
// syscalls: an untracked writer makes one per Send; a tracked writer makes
// one when a reader is added, none while its reader is awake (here: not
// even in Next), and exactly one per Send while the reader's cursor says
// it sleeps.
func TestWakeSkip(t *testing.T) {
	uw, _ := openPair(t, 16, 16, 0)
	for range 10 {
		uw.Publish([]byte("x"))
	}
	if got := uw.Stats().Wakes; got != 10 {
		t.Errorf("untracked writer: %d wake-ups for 10 messages, want 10", got)
	}

	w, rs, cs := trackedPair(t, 16, 16, false)
	r, cur := rs[0], cs[0].w
	if !w.Tracked() {
		t.Fatal("AddReader did not switch to tracked mode")
	}
	if got := w.Stats().Wakes; got != 1 {
		t.Fatalf("AddReader: %d wake-ups, want 1", got)
	}
	for range 1000 {
		if err := w.Publish([]byte("awake")); err != nil {
			t.Fatal(err)
		}
	}
	buf, _ := w.Loan(1)
	buf[0] = 1
	w.Commit(1)
	w.Wake()
	if got := w.Stats().Wakes; got != 1 {
		t.Fatalf("%d wake-ups while the reader was awake, want only AddReader's", got-1)
	}
	r.Seek(w.Seq())

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const rounds = 20
	got := make(chan Msg)
	go func() {
		defer close(got)
		for range rounds {
			m, err := r.Next(ctx)
			if err != nil {
				return
			}
			got <- Msg{Seq: m.Seq, Data: append([]byte(nil), m.Data...)}
		}
	}()
	// The reader flags itself sleeping, then (fenceless writer) runs
	// membarrier and checks the ring once more before FUTEX_WAIT. A
	// message that lands in that window is found without a wake-up, and
	// the writer, loading the flag after the reader cleared it, rightly
	// makes none: a round may end with no wake-up, never with two.
	prev := w.Stats().Wakes
	for i := range rounds {
		waitUntil(t, "the reader to go to sleep", cur.Sleeping)
		time.Sleep(time.Millisecond) // mostly past that window
		if err := w.Publish([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, ok := <-got
		if !ok || len(m.Data) != 1 || m.Data[0] != byte(i) {
			t.Fatalf("round %d: got %v, %v", i, m, ok)
		}
		now := w.Stats().Wakes
		if now-prev > 1 {
			t.Fatalf("round %d: %d wake-ups for one message", i, now-prev)
		}
		prev = now
	}
	if got := w.Stats().Wakes - 1; got < rounds/2 {
		t.Fatalf("%d wake-ups in %d rounds with the reader asleep, want about one a round", got, rounds)
	}
	before := w.Stats().Wakes
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.Stats().Wakes - before; got != 1 {
		t.Errorf("Close: %d wake-ups, want 1", got)
	}
}

// TestTrackedNoLostWakeups runs tracked readers that keep falling asleep
// while the writer publishes with pauses, with the readers' sleep made
// unbounded: a wake-up lost between the reader's "sleeping" store and the
// writer's check would hang a reader, which the 1 minute ctx turns into a
// failure. Every message must be read or counted missed.
func TestTrackedNoLostWakeups(t *testing.T) {
	old := maxSleep
	maxSleep = time.Hour
	defer func() { maxSleep = old }()
	const total = 20000
	w, rs, _ := trackedPair(t, 64, 16, false, false, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	counts := make([][2]uint64, len(rs))
	errs := make(chan error, len(rs))
	for i, r := range rs {
		wg.Go(func() {
			for {
				m, err := r.Next(ctx)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					errs <- fmt.Errorf("reader %d after %d messages: %w", i, counts[i][0], err)
					return
				}
				counts[i][0]++
				counts[i][1] += m.Missed
			}
		})
	}
	var p [8]byte
	for seq := range uint64(total) {
		binary.LittleEndian.PutUint64(p[:], seq)
		if err := w.Publish(p[:]); err != nil {
			t.Fatal(err)
		}
		if seq%1000 == 0 {
			time.Sleep(time.Millisecond) // let the readers fall asleep
		}
	}
	w.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, c := range counts {
		if c[0]+c[1] != total {
			t.Errorf("reader %d: read %d + missed %d != %d", i, c[0], c[1], total)
		}
	}
	t.Logf("%d messages, %+v", total, w.Stats())
}

// TestTrackedReaderWithoutCursor: on a tracked ring a reader without a
// cursor is never woken, but its bounded sleep still finds the message.
func TestTrackedReaderWithoutCursor(t *testing.T) {
	w, rs := openPair(t, 8, 16, 1)
	w.TrackReaders()
	done := make(chan error, 1)
	go func() {
		m, err := rs[0].Next(context.Background())
		if err == nil && string(m.Data) != "late" {
			err = fmt.Errorf("got %q", m.Data)
		}
		done <- err
	}()
	time.Sleep(5 * time.Millisecond) // likely asleep by now; either way works
	w.Publish([]byte("late"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := w.Stats().Wakes; got != 0 {
		t.Errorf("%d wake-ups without tracked readers", got)
	}
}

// TestBlockWaits: a writer one ring ahead of a blocking reader waits in
// Loan (the ring says so) until the reader releases the oldest message;
// the reader then reads everything, nothing missed or torn.
func TestBlockWaits(t *testing.T) {
	const slots = 4
	w, rs, _ := trackedPair(t, slots, 16, true)
	r := rs[0]
	for i := range slots {
		if err := w.Publish([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- w.Publish([]byte{slots}) }()
	waitUntil(t, "the writer to wait", func() bool { st, _ := ReadStats(r.mem); return st.Waiting })
	m, err := r.TryNext()
	if err != nil || m.Seq != 0 || m.Data[0] != 0 {
		t.Fatalf("TryNext: %v, %v", m, err)
	}
	if st, _ := ReadStats(r.mem); st.WriteSeq != slots || !st.Waiting {
		t.Fatalf("the writer went on while the view of message 0 was held: %+v", st)
	}
	if !r.Release() {
		t.Fatal("view of message 0 torn")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st, _ := ReadStats(r.mem); st.Waiting {
		t.Error("writer-waiting flag still set")
	}
	for i := 1; i <= slots; i++ {
		m, err := r.TryNext()
		if err != nil || m.Seq != uint64(i) || m.Missed != 0 || m.Data[0] != byte(i) || !r.Release() {
			t.Fatalf("message %d: %v, %v", i, m, err)
		}
	}
	if st := w.Stats(); st.Waits != 1 || st.Demoted != 0 {
		t.Errorf("writer stats %+v, want 1 wait and no demotion", st)
	}
}

// TestBlockDemote: a blocking reader that does not advance holds the
// writer up for the block timeout once, is demoted, and then loses
// messages like any dropping reader.
func TestBlockDemote(t *testing.T) {
	const slots = 4
	w, rs, _ := trackedPair(t, slots, 16, true)
	r := rs[0]
	w.SetBlockTimeout(20 * time.Millisecond)
	for i := range 3 * slots {
		if err := w.Publish([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if st := w.Stats(); st.Waits != 1 || st.Demoted != 1 {
		t.Errorf("writer stats %+v, want 1 wait and 1 demotion", st)
	}
	if info := w.Readers(); len(info) != 1 || !info[0].Block || !info[0].Demoted || info[0].ID != 1 {
		t.Errorf("Readers() = %+v", info)
	}
	m, err := r.TryNext()
	if err != nil || m.Missed == 0 || m.Seq != m.Missed {
		t.Errorf("demoted reader: %+v, %v; want missed messages", m, err)
	}
}

// TestBlockHostileCursor gives the writer blocking readers whose cursors
// hold hostile values. Positions beyond the write sequence count as caught
// up; a position far behind costs one block timeout; a cursor scribbled
// over while the writer publishes (positions, sleeping flag, futex word
// and spurious wake-ups) never stalls the writer beyond the timeout.
func TestBlockHostileCursor(t *testing.T) {
	const slots = 8
	w, _, cs := trackedPair(t, slots, 16, true, true, true)
	w.SetBlockTimeout(10 * time.Millisecond)
	ahead, behind, scribbled := cs[0].r, cs[1].r, cs[2].r
	ahead.position().Store(NoPosition)
	behind.position().Store(NoPosition)
	scribbled.position().Store(NoPosition)
	for range 10 * slots {
		w.Publish([]byte("x"))
	}
	if st := w.Stats(); st.Waits != 0 {
		t.Fatalf("waited for readers at NoPosition: %+v", st)
	}
	ahead.position().Store(w.Seq() + 1<<40)
	behind.position().Store(1) // far behind, never moves
	for range 4 * slots {
		w.Publish([]byte("x"))
	}
	if st := w.Stats(); st.Waits != 1 || st.Demoted != 1 {
		t.Fatalf("writer stats %+v, want the reader far behind demoted once", st)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			seq := u64(w.mem, OffSlotSeq).Load()
			vals := []uint64{0, seq, seq - slots, seq - slots + 1, seq + 1, NoPosition, rng.Uint64(), rng.Uint64N(seq + 1)}
			scribbled.position().Store(vals[rng.IntN(len(vals))])
			scribbled.sleeping().Store(rng.Uint32N(2))
			scribbled.futex().Add(1)
			futexWake(scribbled.futexAddr())
		}
	})
	for range 2000 {
		if err := w.Publish([]byte("under fire")); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	st, info := w.Stats(), w.Readers()
	if st.Demoted > 2 || info[0].Demoted || !info[1].Demoted {
		t.Errorf("writer stats %+v, readers %+v: want the reader ahead kept, the one behind demoted, no one twice", st, info)
	}
	t.Logf("writer stats %+v, readers %+v", st, info)
}

// TestLoanCtx: a loan blocked on a reader ends with its ctx, loans
// nothing and demotes no one; once the reader advances, loans go on.
func TestLoanCtx(t *testing.T) {
	const slots = 2
	w, rs, _ := trackedPair(t, slots, 16, true)
	for range slots {
		w.Publish([]byte("x"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := w.LoanCtx(ctx, 1)
		done <- err
	}()
	waitUntil(t, "the writer to wait", func() bool { st, _ := ReadStats(rs[0].mem); return st.Waiting })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("LoanCtx after cancel: %v", err)
	}
	if err := w.Commit(1); !errors.Is(err, ErrNoLoan) {
		t.Errorf("Commit after a cancelled LoanCtx: %v, want ErrNoLoan", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel2()
	if err := w.PublishCtx(short, []byte("y")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("PublishCtx past its deadline: %v", err)
	}
	if st := w.Stats(); st.Demoted != 0 {
		t.Errorf("demoted on ctx end: %+v", st)
	}
	m, err := rs[0].TryNext()
	if err != nil || m.Seq != 0 {
		t.Fatal(m, err)
	}
	rs[0].Release()
	if err := w.PublishCtx(context.Background(), []byte("z")); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveBlockingReader: removing the reader a Loan is blocked on lets
// the Loan go on at once, and the cursor may be closed right after.
func TestRemoveBlockingReader(t *testing.T) {
	const slots = 2
	w, rs, cs := trackedPair(t, slots, 16, true)
	for range slots {
		w.Publish([]byte("x"))
	}
	done := make(chan error, 1)
	go func() { done <- w.Publish([]byte("y")) }()
	waitUntil(t, "the writer to wait", func() bool { st, _ := ReadStats(rs[0].mem); return st.Waiting })
	if !w.RemoveReader(1) {
		t.Fatal("reader 1 not tracked")
	}
	cs[0].w.Close() // the writer no longer touches it
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Demoted != 0 || st.Waits != 1 {
		t.Errorf("writer stats %+v", st)
	}
}

// TestBlockNoLoss: blocking readers that read at their own pace (with
// pauses, views and copies) see every message intact: nothing missed,
// nothing torn. A dropping reader alongside accounts for every message.
func TestBlockNoLoss(t *testing.T) {
	const total = 20000
	w, rs, _ := trackedPair(t, 16, 16, true, true, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Bool
	results := make([][3]uint64, len(rs)) // read, missed, torn
	for i, r := range rs {
		wg.Go(func() {
			var buf []byte
			next := uint64(0)
			for {
				var m Msg
				var err error
				if i == 1 {
					buf, m, err = r.Recv(ctx, buf)
				} else {
					m, err = r.Next(ctx)
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("reader %d: %v", i, err)
					failed.Store(true)
					return
				}
				ok := len(m.Data) == 8 && binary.LittleEndian.Uint64(m.Data) == m.Seq && m.Seq == next+m.Missed
				if i != 1 && !r.Release() {
					results[i][2]++
				} else if !ok {
					t.Errorf("reader %d: intact message %d after %d with %d missed: %x", i, m.Seq, next, m.Missed, m.Data)
					failed.Store(true)
					return
				}
				next = m.Seq + 1
				results[i][0]++
				results[i][1] += m.Missed
				if m.Seq%(500+uint64(i)*77) == 0 {
					time.Sleep(200 * time.Microsecond) // fall behind
				}
			}
		})
	}
	var p [8]byte
	for seq := range uint64(total) {
		binary.LittleEndian.PutUint64(p[:], seq)
		if err := w.Publish(p[:]); err != nil {
			t.Fatal(err)
		}
		if failed.Load() {
			break
		}
	}
	w.Close()
	wg.Wait()
	st := w.Stats()
	for i, res := range results {
		if res[0]+res[1] != total {
			t.Errorf("reader %d: read %d + missed %d != %d", i, res[0], res[1], total)
		}
		if i < 2 && (res[1] != 0 || res[2] != 0) {
			t.Errorf("blocking reader %d: %d missed, %d torn; want none (writer %+v)", i, res[1], res[2], st)
		}
		t.Logf("reader %d: read %d, missed %d, torn %d", i, res[0], res[1], res[2])
	}
	if st.Demoted != 0 {
		t.Errorf("writer demoted a reader that kept up: %+v", st)
	}
	t.Logf("writer: %+v", st)
}

// TestAddRemoveWhilePublishing adds and removes readers, blocking and not,
// from another goroutine while the writer publishes, and closes each
// cursor as soon as RemoveReader returns: the writer must never touch a
// cursor after that (it would fault).
func TestAddRemoveWhilePublishing(t *testing.T) {
	w, rs := openPair(t, 8, 16, 1)
	r := rs[0]
	rc := cursorPair(t, "sb-test-steady")
	r.AttachCursor(rc.r)
	if err := w.AddReader(0, rc.w, true); err != nil {
		t.Fatal(err)
	}
	stop, stopPub := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the steady blocking reader keeps up
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := r.TryNext(); errors.Is(err, ErrClosed) {
				return
			}
			r.Release()
		}
	})
	published := make(chan uint64)
	go func() {
		n := uint64(0)
		for {
			select {
			case <-stopPub:
				published <- n
				return
			default:
			}
			w.Publish([]byte("churn"))
			n++
		}
	}()
	for i := range uint64(200) {
		c, err := CreateCursor("sb-test-churn")
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			c.position().Store(0) // far behind: the writer blocks on it
		}
		if err := w.AddReader(i+1, c, i%2 == 0); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			time.Sleep(100 * time.Microsecond)
		}
		if !w.RemoveReader(i + 1) {
			t.Fatalf("reader %d not tracked", i+1)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	close(stopPub)
	n := <-published
	close(stop) // only now: the writer may be waiting for this reader
	wg.Wait()
	if got := w.Readers(); len(got) != 1 || got[0].ID != 0 || got[0].Demoted {
		t.Errorf("Readers() = %+v", got)
	}
	t.Logf("%d messages published during 200 add/remove rounds; writer %+v", n, w.Stats())
}

// TestBlockReaderGone: a blocking reader that closes its read-write
// cursor mapping leaves NoPosition behind, so the writer blocked on it
// goes on at once, without demoting it.
func TestBlockReaderGone(t *testing.T) {
	const slots = 2
	w, rs, cs := trackedPair(t, slots, 16, true)
	for range slots {
		w.Publish([]byte("x"))
	}
	done := make(chan error, 1)
	go func() { done <- w.Publish([]byte("y")) }()
	waitUntil(t, "the writer to wait", func() bool { st, _ := ReadStats(rs[0].mem); return st.Waiting })
	cs[0].r.Close() // the reader's process exits
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := cs[0].w.Position(); got != NoPosition {
		t.Errorf("cursor at %d after the reader closed it, want NoPosition", got)
	}
	if st := w.Stats(); st.Demoted != 0 || st.Waits != 1 {
		t.Errorf("writer stats %+v", st)
	}
}

// TestAddReaderWakes: a reader that fell asleep before its writer tracked
// it is woken by AddReader, so it does not miss the messages published
// meanwhile by up to its sleep cap (lifted here, so it would hang).
func TestAddReaderWakes(t *testing.T) {
	old := maxSleep
	maxSleep = time.Hour
	defer func() { maxSleep = old }()
	w, rs := openPair(t, 8, 16, 1)
	w.TrackReaders()
	c := cursorPair(t, "sb-test-late")
	if err := rs[0].AttachCursor(c.r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := rs[0].Next(ctx)
		done <- err
	}()
	waitUntil(t, "the reader to go to sleep", c.w.Sleeping)
	w.Publish([]byte("unseen")) // tracked, nobody tracked sleeps: no wake-up
	if err := w.AddReader(1, c.w, false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
