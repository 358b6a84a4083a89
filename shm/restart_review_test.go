package shm

import (
	"encoding/binary"
	"testing"
)

// TestReviewRestartNumbering: a writer that died between a record's word
// and the OffMessages store leaves the header one message short. The next
// writer numbers from the header, but a reader that read the dead writer's
// last slot to its end goes on into the next slot without a resync and
// numbers from its own count: the same message has two numbers.
//
// A review of layout version 2 found this; the test guards the fix.
func TestReviewRestartNumbering(t *testing.T) {
	mem, w, r := newRingPair(t, 8, 256)
	var p [8]byte
	for i := range uint64(3) {
		binary.LittleEndian.PutUint64(p[:], i)
		w.Publish(p[:])
	}
	// The state of a writer that died just after the third record's word.
	u64(mem, OffMessages).Store(2)
	for range 3 {
		if _, err := r.TryNext(); err != nil {
			t.Fatal(err)
		}
		r.Release()
	}
	w2, err := NewWriter(mem)
	if err != nil {
		t.Fatal(err)
	}
	seq := w2.Seq()
	binary.LittleEndian.PutUint64(p[:], 100)
	w2.Publish(p[:])
	m, err := r.TryNext()
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != seq {
		t.Fatalf("writer numbered its first message %d, reader reports %d", seq, m.Seq)
	}
}
