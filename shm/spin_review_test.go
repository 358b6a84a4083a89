package shm

import (
	"context"
	"testing"
	"time"
)

// TestReviewNextSpinsPastCtx: a hostile writer puts this slot's end word at
// the reader's place but a slot sequence word below "begun": ready says
// there is something to do, poll finds nothing, and Next loops between
// TryNext and Wait without ever checking ctx.
//
// A review of layout version 2 found this; the test guards the fix.
func TestReviewNextSpinsPastCtx(t *testing.T) {
	mem := newRing(t, 4, 64)
	r, err := NewReader(mem)
	if err != nil {
		t.Fatal(err)
	}
	base := r.g.slotOff(0)
	u64(mem, base+SlotOffRecords).Store(recordHi(0) | recEnd)
	u64(mem, base+SlotOffSeq).Store(0) // not begun
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := r.Next(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("Next returned %v", err)
	case <-time.After(2 * time.Second):
		u32(mem, OffClosed).Store(1) // let the goroutine out
		err := <-done
		t.Fatalf("Next(ctx with 50ms deadline) still running after 2s (busy loop); after Close it returned %v", err)
	}
}

// TestReviewRecordLongerThanSlot: with S not a multiple of 8 the reader's
// bound (next+8 <= area) admits a record of roundup8(S) bytes.
//
// A review of layout version 2 found this; the test guards the fix.
func TestReviewRecordLongerThanSlot(t *testing.T) {
	const size = 100
	mem := newRing(t, 4, size)
	r, err := NewReader(mem)
	if err != nil {
		t.Fatal(err)
	}
	base := r.g.slotOff(0)
	u64(mem, base+SlotOffFirst).Store(0)
	u64(mem, base+SlotOffRecords).Store(recordHi(0) | 104)
	u64(mem, base+SlotOffSeq).Store(1)
	u64(mem, OffSlotSeq).Store(1)
	m, err := r.TryNext()
	if err == nil && len(m.Data) > r.SlotSize() {
		t.Fatalf("message of %d bytes from a ring of %d-byte slots", len(m.Data), r.SlotSize())
	}
	t.Logf("msg len %d err %v", len(m.Data), err)
}
