package shm

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestBeginAheadSparesBlockingReader: a writer that ends a slot at a
// commit begins the next one at once (beginAhead), but not over a
// message a blocking reader still needs: then the next Loan begins it,
// after waiting, as without beginning ahead. Here each 64 B message
// fills a slot of a ring of 8, and the blocking reader reads only one.
func TestBeginAheadSparesBlockingReader(t *testing.T) {
	mem, w, r := newRingPair(t, beginAheadSlots, 64)
	c := memCursor(t)
	if err := r.AttachCursor(c); err != nil {
		t.Fatal(err)
	}
	if err := w.AddReader(1, c, true); err != nil {
		t.Fatal(err)
	}
	slotSeq := func() uint64 {
		st, err := ReadStats(mem)
		if err != nil {
			t.Fatal(err)
		}
		return st.SlotSeq
	}
	msg := make([]byte, 64)
	for i := range beginAheadSlots - 1 {
		if err := w.Publish(msg); err != nil {
			t.Fatal(err)
		}
		if got, want := slotSeq(), uint64(i+2); got != want {
			t.Fatalf("after message %d: %d slots begun, want %d (the next begun ahead)", i, got, want)
		}
	}
	// The last free slot: beginning the one after it would overwrite
	// message 0, which the reader has not read.
	if err := w.Publish(msg); err != nil {
		t.Fatal(err)
	}
	if got, want := slotSeq(), uint64(beginAheadSlots); got != want {
		t.Fatalf("%d slots begun over a blocking reader's message, want %d", got, want)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.LoanCtx(canceled, 64); !errors.Is(err, context.Canceled) {
		t.Fatalf("LoanCtx over a blocking reader's message: %v, want Canceled", err)
	}
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	m, err := r.Next(ctx)
	if err != nil || m.Seq != 0 {
		t.Fatalf("read message %d, %v; want 0", m.Seq, err)
	}
	r.Release()
	if err := w.Publish(msg); err != nil {
		t.Fatal(err)
	}
	if got, want := slotSeq(), uint64(beginAheadSlots+1); got != want {
		t.Fatalf("%d slots begun, want %d: the freed slot, and not the one the reader needs", got, want)
	}
	if st := w.Stats(); st.Demoted != 0 || st.Waits != 1 {
		t.Fatalf("writer stats %+v, want one wait (the cancelled loan) and no one demoted", st)
	}
}
