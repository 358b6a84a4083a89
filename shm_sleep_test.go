package switchboard_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"switchboard"
	"switchboard/shm"
)

// waitAsleep returns once a wait on s (who) sleeps in sleepRings, where
// futex_waitv works; elsewhere after 20 ms, far beyond any spin.
func waitAsleep(t *testing.T, s *switchboard.Subscription, who string) {
	t.Helper()
	if !shm.WaitAnyWorks() {
		time.Sleep(20 * time.Millisecond)
		return
	}
	for deadline := time.Now().Add(10 * time.Second); !switchboard.SubSleeping(s); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never went to sleep in sleepRings", who)
		}
	}
}

// TestShmSleepWakes: NextMsg and NextView asleep on a subscription's
// rings (the spin long over) wake for each thing that should end the
// wait: a ring message, a socket message, the caller's ctx, Unsubscribe,
// Close. A wake-up lost would hang the wait until the test's deadline.
func TestShmSleepWakes(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	const subj = "sleep.wakes"
	type result struct {
		data string
		err  error
	}
	// wait starts NextMsg (or NextView) on s and returns its result channel.
	wait := func(ctx context.Context, s *switchboard.Subscription, view bool) chan result {
		ch := make(chan result, 1)
		go func() {
			if view {
				v, err := s.NextView(ctx)
				if err != nil {
					ch <- result{err: err}
					return
				}
				d := string(v.Data)
				v.Release()
				ch <- result{data: d}
				return
			}
			m, err := s.NextMsg(ctx)
			if err != nil {
				ch <- result{err: err}
				return
			}
			ch <- result{data: string(m.Data)}
		}()
		return ch
	}
	get := func(t *testing.T, ch chan result) result {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("the wait never woke up")
			return result{}
		}
	}
	for _, view := range []bool{false, true} {
		name := map[bool]string{false: "NextMsg", true: "NextView"}[view]
		t.Run(name+"/ring message", func(t *testing.T) {
			_, pub, s := ringPair(t, sh.unix, subj, nil)
			ch := wait(context.Background(), s, view)
			waitAsleep(t, s, "the wait")
			if err := pub.Publish(subj, []byte("by ring")); err != nil {
				t.Fatal(err)
			}
			if r := get(t, ch); r.err != nil || r.data != "by ring" {
				t.Fatalf("got %q, %v", r.data, r.err)
			}
		})
		t.Run(name+"/socket message", func(t *testing.T) {
			_, _, s := ringPair(t, sh.unix, subj, nil)
			sock := shmConnect(t, sh.unix, &switchboard.Options{NoSharedMemory: true})
			ch := wait(context.Background(), s, view)
			waitAsleep(t, s, "the wait")
			if err := sock.Publish(subj, []byte("by socket")); err != nil {
				t.Fatal(err)
			}
			if r := get(t, ch); r.err != nil || r.data != "by socket" {
				t.Fatalf("got %q, %v", r.data, r.err)
			}
		})
		t.Run(name+"/ctx", func(t *testing.T) {
			_, _, s := ringPair(t, sh.unix, subj, nil)
			ctx, cancel := context.WithCancel(context.Background())
			ch := wait(ctx, s, view)
			waitAsleep(t, s, "the wait")
			cancel()
			if r := get(t, ch); !errors.Is(r.err, context.Canceled) {
				t.Fatalf("got %q, %v, want context.Canceled", r.data, r.err)
			}
		})
		t.Run(name+"/Unsubscribe", func(t *testing.T) {
			_, _, s := ringPair(t, sh.unix, subj, nil)
			ch := wait(context.Background(), s, view)
			waitAsleep(t, s, "the wait")
			if err := s.Unsubscribe(); err != nil {
				t.Fatal(err)
			}
			if r := get(t, ch); r.err == nil {
				t.Fatalf("got %q after Unsubscribe, want an error", r.data)
			}
		})
		t.Run(name+"/Close", func(t *testing.T) {
			sub, _, s := ringPair(t, sh.unix, subj, nil)
			ch := wait(context.Background(), s, view)
			waitAsleep(t, s, "the wait")
			sub.Close()
			if r := get(t, ch); r.err == nil {
				t.Fatalf("got %q after Close, want an error", r.data)
			}
		})
	}
}

// TestShmSleepTwoCallers: two goroutines waiting in NextMsg on one
// subscription (one sleeps on the rings itself, the other with watcher
// goroutines) both get a message.
func TestShmSleepTwoCallers(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	const subj = "sleep.two"
	_, pub, s := ringPair(t, sh.unix, subj, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	got := make(chan string, 2)
	for range 2 {
		wg.Go(func() {
			m, err := s.NextMsg(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			got <- string(m.Data)
		})
	}
	time.Sleep(20 * time.Millisecond)
	for _, d := range []string{"one", "two"} {
		if err := pub.Publish(subj, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(got)
	seen := map[string]bool{}
	for d := range got {
		seen[d] = true
	}
	if !seen["one"] || !seen["two"] {
		t.Fatalf("the two callers got %v", seen)
	}
}

// TestShmSyncSecondCallerDeadline: while one goroutine sleeps in NextMsg
// on a subscription's ring (holding it), a second caller with a deadline
// gets its deadline, not a wait for the first one to wake.
func TestShmSyncSecondCallerDeadline(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	const subj = "sleep.deadline"
	_, pub, s := ringPair(t, sh.unix, subj, nil)
	first := make(chan error, 1)
	go func() {
		_, err := s.NextMsg(context.Background())
		first <- err
	}()
	waitAsleep(t, s, "the first caller")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() {
		_, err := s.NextMsg(ctx)
		second <- err
	}()
	select {
	case err := <-second:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second caller: %v, want its deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second caller's deadline passed unnoticed while the first slept")
	}
	if err := pub.Publish(subj, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first caller: %v", err)
	}
}

// TestShmSleepViewReleaseWakes: goroutine B sleeps in NextView while
// goroutine A holds a View of the subscription's only ring (B cannot
// watch it). A message arrives in the ring meanwhile; A's Release must
// wake B, which then finds it.
func TestShmSleepViewReleaseWakes(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	const subj = "sleep.view"
	_, pub, s := ringPair(t, sh.unix, subj, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := pub.Publish(subj, []byte("one")); err != nil {
		t.Fatal(err)
	}
	v, err := s.NextView(ctx) // held by this goroutine ("A")
	if err != nil || string(v.Data) != "one" {
		t.Fatalf("first view %q, %v", v.Data, err)
	}
	got := make(chan string, 1)
	go func() { // B
		w, err := s.NextView(ctx)
		if err != nil {
			got <- err.Error()
			return
		}
		d := string(w.Data)
		w.Release()
		got <- d
	}()
	waitAsleep(t, s, "B")
	if err := pub.Publish(subj, []byte("two")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // the message is in the ring, B asleep
	v.Release()
	select {
	case d := <-got:
		if d != "two" {
			t.Fatalf("B got %q, want two", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B slept on after A released the ring holding a message")
	}
}
