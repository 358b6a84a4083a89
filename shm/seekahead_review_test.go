package shm

import (
	"encoding/binary"
	"testing"
	"time"
)

// TestReviewSeekAheadBlockingLoss: a blocking reader that Seeks past the
// ring's end stays in the writer's slot of that moment and publishes the
// target as its position. The writer may then overwrite that slot and the
// next (the reader needs neither); the reader's leave finds the next slot
// lapped and lands lapMargin slots past the oldest, past the message it
// sought, which the writer kept for it.
//
// A review of layout version 2 found this; the test guards the fix.
func TestReviewSeekAheadBlockingLoss(t *testing.T) {
	const slots = 8
	w, rs, _ := trackedPair(t, slots, 16, true)
	r := rs[0]
	w.SetBlockTimeout(20 * time.Second)
	const target = 5
	r.Seek(target)
	done := make(chan error, 1)
	go func() {
		var p [8]byte
		for seq := range uint64(14) {
			binary.LittleEndian.PutUint64(p[:], seq)
			if err := w.Publish(p[:]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	waitUntil(t, "the writer to wait for the reader", func() bool {
		st, _ := ReadStats(w.mem)
		return st.Waiting
	})
	m, err := r.TryNext()
	if err != nil {
		t.Fatal(err)
	}
	got := binary.LittleEndian.Uint64(m.Data)
	r.Release()
	for {
		if _, err := r.TryNext(); err != nil {
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m.Seq != target || m.Missed != 0 {
		t.Fatalf("blocking reader sought %d: got message %d (payload %d) with %d missed; writer stats %+v", target, m.Seq, got, m.Missed, w.Stats())
	}
}
