package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestWaiterManyRings reads five tracked rings on one goroutine with one
// Waiter, whose sleeps are made unbounded and whose spin is off, while
// five writers publish at random moments: a wake-up lost on any ring hangs
// the reader and fails the test at the ctx's end. Every message must be
// read, in order per ring.
func TestWaiterManyRings(t *testing.T) {
	old := maxSleep
	maxSleep = time.Hour
	defer func() { maxSleep = old }()
	const rings, per = 5, 2000
	var ws []*Writer
	var rs []*Reader
	for range rings {
		w, r, _ := trackedPair(t, 64, 16, true)
		ws = append(ws, w)
		rs = append(rs, r[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			var p [8]byte
			for seq := range uint64(per) {
				binary.LittleEndian.PutUint64(p[:], seq)
				if err := w.Publish(p[:]); err != nil {
					t.Error(err)
					return
				}
				if rng.IntN(8) == 0 {
					time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
				}
			}
		})
	}
	wt := NewWaiter()
	wt.SetSpin(false)
	next := make([]uint64, rings)
	left := rings * per
	for left > 0 {
		since := wt.Kicks()
		for i, r := range rs {
			for {
				m, err := r.TryNext()
				if errors.Is(err, ErrEmpty) {
					break
				}
				if err != nil {
					t.Fatalf("ring %d: %v", i, err)
				}
				if got := binary.LittleEndian.Uint64(m.Data); got != next[i] || m.Missed != 0 {
					t.Fatalf("ring %d: message %d (missed %d), want %d", i, got, m.Missed, next[i])
				}
				next[i]++
				left--
			}
		}
		if left == 0 {
			break
		}
		if err := wt.Wait(ctx, rs, since); err != nil {
			t.Fatalf("waiting with %d messages left (%v): %v", left, next, err)
		}
	}
	wg.Wait()
}

// TestWaiterKickAndCancel: a Kick ends a sleeping Wait, a stale kick count
// makes Wait return at once, and a cancelled ctx ends it with its error.
func TestWaiterKickAndCancel(t *testing.T) {
	_, rs, _ := trackedPair(t, 8, 16, false, false)
	wt := NewWaiter()
	wt.SetSpin(false)
	since := wt.Kicks()
	done := make(chan error, 1)
	go func() { done <- wt.Wait(context.Background(), rs, since) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Wait returned with nothing to report: %v", err)
	default:
	}
	wt.Kick()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := wt.Wait(context.Background(), rs, since); err != nil {
		t.Fatalf("stale kick count: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- wt.Wait(ctx, rs, wt.Kicks()) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	// Wait may return nil early (a spurious return, or its sleep ending
	// a moment before ctx's timer): callers loop.
	var err error
	for i := 0; err == nil && i < 3; i++ {
		err = wt.Wait(ctx, rs, wt.Kicks())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after the deadline: %v", err)
	}
	for i, r := range rs {
		if r.cur.Sleeping() {
			t.Errorf("reader %d still flagged sleeping after Wait", i)
		}
	}
}
