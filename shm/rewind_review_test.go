package shm

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReviewRewindMissedHuge: Rewind loads the slot count begun, then the
// oldest slot's sequence word; if the writer began that slot again in
// between, msg stays 0, and leave clears free, so the first message after
// counts every message since the ring's start as missed.
//
// A review of layout version 2 found this; the test guards the fix.
func TestReviewRewindMissedHuge(t *testing.T) {
	mem, w, r := newRingPair(t, 4, 16)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		p := make([]byte, 8)
		for !stop.Load() {
			w.Publish(p)
		}
	})
	defer func() { stop.Store(true); wg.Wait() }()
	for st, _ := ReadStats(mem); st.Messages < 100000; st, _ = ReadStats(mem) {
		time.Sleep(time.Millisecond)
	}
	d := 3 * time.Second
	if testing.Short() {
		d = time.Second
	}
	deadline := time.Now().Add(d)
	tries := 0
	for time.Now().Before(deadline) {
		tries++
		r.Rewind()
		pos := r.Pos()
		m, err := r.TryNext()
		if err != nil {
			continue
		}
		if m.Missed > 1000 {
			t.Fatalf("after %d Rewinds: Pos() right after Rewind %d, message %d with %d missed", tries, pos, m.Seq, m.Missed)
		}
	}
	t.Logf("no huge Missed in %d Rewinds", tries)
}
