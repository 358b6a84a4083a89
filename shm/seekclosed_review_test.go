package shm

import "testing"

// TestReviewSeekAheadClosedEarly: a reader sought past the end stays in the
// slot the writer was in and passes over records slot by slot; poll counts
// each slot change against pollAttempts, so on a closed ring TryNext's two
// polls give up 8 slots on and it reports ErrClosed before the message
// sought, which the ring holds.
//
// A review of layout version 2 found this; the test guards the fix.
func TestReviewSeekAheadClosedEarly(t *testing.T) {
	_, w, r := newRingPair(t, 64, 16) // one 16-byte message per slot
	r.Seek(20)
	p := make([]byte, 16)
	for range 30 {
		w.Publish(p)
	}
	w.Close()
	m, err := r.TryNext()
	if err != nil {
		t.Fatalf("TryNext after Seek(20) on a closed ring holding messages 0..29: %v (Pos %d)", err, r.Pos())
	}
	if m.Seq != 20 {
		t.Fatalf("got %d, want 20", m.Seq)
	}
}
