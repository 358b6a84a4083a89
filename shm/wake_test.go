package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPair creates a memfd ring and opens n read-only regions on dups of
// its fd, as subscribers in other processes would.
func openPair(t testing.TB, slots, size, n int) (*Writer, []*Reader) {
	t.Helper()
	reg, err := Create("sb-test", slots, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	w, err := reg.Writer()
	if err != nil {
		t.Fatal(err)
	}
	var rs []*Reader
	for range n {
		fd, err := unix.FcntlInt(uintptr(reg.Fd()), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := OpenReader(fd)
		if err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
		t.Cleanup(func() { rd.Close() })
		r, err := rd.NewReader()
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return w, rs
}

// TestFanOutBlocking runs a writer and three blocking readers in separate
// goroutines on read-only mappings. The writer pauses now and then so the
// readers go to sleep in FUTEX_WAIT and must be woken. Every reader must
// see strictly increasing sequences whose payloads match, and account for
// every message as read or missed.
func TestFanOutBlocking(t *testing.T) {
	const total = 20000
	w, rs := openPair(t, 64, 64, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, len(rs))
	got := make([][2]uint64, len(rs)) // read, missed
	for i, r := range rs {
		wg.Go(func() {
			var buf []byte
			last := int64(-1)
			for {
				var m Msg
				var err error
				if i == 0 {
					buf, m, err = r.Recv(ctx, buf)
				} else {
					m, err = r.Next(ctx)
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				if int64(m.Seq) <= last || m.Seq != uint64(last+1)+m.Missed {
					errs <- errors.New("sequence gap not reported as missed")
					return
				}
				if len(m.Data) != 8 || binary.LittleEndian.Uint64(m.Data) != m.Seq {
					if i == 0 || r.Release() {
						errs <- errors.New("intact message with wrong payload")
						return
					}
				}
				last = int64(m.Seq)
				got[i][0]++
				got[i][1] += m.Missed
			}
		})
	}
	var p [8]byte
	for seq := range uint64(total) {
		binary.LittleEndian.PutUint64(p[:], seq)
		if err := w.Publish(p[:]); err != nil {
			t.Fatal(err)
		}
		if seq%2000 == 0 {
			time.Sleep(5 * time.Millisecond) // let the readers fall asleep
		}
	}
	w.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, r := range rs {
		st := r.Stats()
		if got[i][0]+got[i][1] != total || st.Missed != got[i][1] {
			t.Errorf("reader %d: read %d + missed %d != %d (stats %+v)", i, got[i][0], got[i][1], total, st)
		}
		t.Logf("reader %d: %+v", i, st)
	}
}

// TestNextCancel checks that a reader blocked in Next returns when its
// context is cancelled or reaches its deadline, and that a message
// published later is still delivered.
func TestNextCancel(t *testing.T) {
	w, rs := openPair(t, 4, 16, 1)
	r := rs[0]

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.Next(ctx)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // likely asleep in FUTEX_WAIT by now
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return after cancel")
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if _, err := r.Next(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next past deadline: %v", err)
	}

	go func() {
		time.Sleep(20 * time.Millisecond)
		w.Publish([]byte("late"))
	}()
	m, err := r.Next(context.Background())
	if err != nil || string(m.Data) != "late" {
		t.Fatalf("Next = %q, %v", m.Data, err)
	}
}

// TestFutexWakeReadOnly checks that FUTEX_WAKE from the writer's mapping
// wakes a FUTEX_WAIT on a different, read-only mapping of the same memfd
// (a shared, not private, futex). The 30 s bound only catches a missing
// wake-up; it is not a performance check.
func TestFutexWakeReadOnly(t *testing.T) {
	reg, err := Create("sb-futex", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	fd, _ := unix.FcntlInt(uintptr(reg.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	rd, err := OpenReader(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	w, _ := reg.Writer()
	raddr := addr32(rd.mem, OffFutex)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u32(rd.mem, OffFutex).Load() == 0 {
			futexWait(raddr, 0, 30*time.Second)
		}
	}()
	time.Sleep(20 * time.Millisecond)
	w.Wake()
	<-done
	if d := time.Since(start); d > 25*time.Second {
		t.Fatalf("waiter woke after %v: the wake-up was lost", d)
	}
}

// TestWaitDoesNotConsume: Wait returns when a message is there, and the
// message is still there for TryNext.
func TestWaitDoesNotConsume(t *testing.T) {
	mem := newRing(t, 8, 64)
	w, _ := NewWriter(mem)
	r, _ := NewReader(mem)
	done := make(chan error, 1)
	go func() { done <- r.Wait(context.Background()) }()
	if err := w.Publish([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m, err := r.TryNext()
	if err != nil || string(m.Data) != "x" {
		t.Fatalf("TryNext after Wait: %q %v", m.Data, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait on an empty ring with a cancelled ctx: %v", err)
	}
}
