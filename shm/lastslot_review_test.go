package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Review of b7fb1fb: a new writer after a begun-ahead empty slot, and
// after a crash between a class-3 record and the counters.
func TestReviewRestartBegunAhead(t *testing.T) {
	mem := newRing(t, 8, 64)
	w, err := NewWriter(mem)
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := NewReader(mem)
	r2, _ := NewReader(mem)
	var p [8]byte
	for i := range uint64(3) {
		binary.LittleEndian.PutUint64(p[:], i)
		if err := w.Publish(p[:]); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := ReadStats(mem); st.SlotSeq != 2 {
		t.Fatalf("slot seq %d, want 2 (slot 0 ended by class 3, slot 1 begun ahead)", st.SlotSeq)
	}
	w0 := u64(mem, HeaderSize+SlotOffRecords+48).Load()
	if w0>>recAlignShift&3 != classLast {
		t.Fatalf("third record word %#x is not class 3", w0)
	}
	for i := range 3 {
		m, err := r1.TryNext()
		if err != nil || m.Seq != uint64(i) {
			t.Fatalf("r1: %d %v", m.Seq, err)
		}
		if i == 0 {
			if m, err := r2.TryNext(); err != nil || m.Seq != 0 {
				t.Fatal(err)
			}
			r2.Release()
			continue
		}
		if d, ok := r2.TakeNext(); !ok || binary.LittleEndian.Uint64(d) != uint64(i) {
			t.Fatalf("r2 TakeNext %d: %v", i, ok)
		}
		r2.Release()
	}
	if _, err := r1.TryNext(); !errors.Is(err, ErrEmpty) {
		t.Fatal(err)
	}
	w2, err := NewWriter(mem)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Seq() != 3 {
		t.Fatalf("new writer seq %d", w2.Seq())
	}
	binary.LittleEndian.PutUint64(p[:], 3)
	w2.Publish(p[:])
	for i, r := range []*Reader{r1, r2} {
		m, err := r.TryNext()
		if err != nil || m.Seq != 3 || m.Missed != 0 || binary.LittleEndian.Uint64(m.Data) != 3 {
			t.Fatalf("reader %d: seq %d missed %d %v", i, m.Seq, m.Missed, err)
		}
	}
	r3, _ := NewReader(mem)
	r3.Rewind()
	for i := range uint64(4) {
		m, err := r3.TryNext()
		if err != nil || m.Seq != i || m.Missed != 0 || binary.LittleEndian.Uint64(m.Data) != i {
			t.Fatalf("rewound reader: seq %d missed %d %v, want %d", m.Seq, m.Missed, err, i)
		}
	}
}

func TestReviewRestartClassLastUncounted(t *testing.T) {
	mem := newRing(t, 8, 64)
	w, _ := NewWriter(mem)
	r, _ := NewReader(mem)
	var p [8]byte
	for i := range uint64(3) {
		binary.LittleEndian.PutUint64(p[:], i)
		w.Publish(p[:])
	}
	for range 3 {
		if _, err := r.TryNext(); err != nil {
			t.Fatal(err)
		}
	}
	r.TryNext() // into slot 1
	// A writer killed after the class-3 record's word, before the
	// counters (and so before beginning ahead).
	u64(mem, OffMessages).Store(2)
	u64(mem, OffBytes).Store(16)
	u64(mem, OffSlotSeq).Store(1)
	s1 := HeaderSize + int(w.g.stride)
	u64(mem, s1+SlotOffSeq).Store(0)
	u64(mem, s1+SlotOffFirst).Store(0)
	w2, err := NewWriter(mem)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Seq() != 3 {
		t.Fatalf("seq %d, want 3", w2.Seq())
	}
	binary.LittleEndian.PutUint64(p[:], 3)
	w2.Publish(p[:])
	m, err := r.TryNext()
	if err != nil || m.Seq != 3 || m.Missed != 0 {
		t.Fatalf("seq %d missed %d %v", m.Seq, m.Missed, err)
	}
}

// Blocking readers (Poll with pauses, TakeNext/TryNext) on a ring of 8
// slots where streams of one size end each slot with a class-3 record and
// the writer begins ahead: nothing missed or torn.
func TestReviewBlockPollBeginAhead(t *testing.T) {
	const total = 30000
	for _, size := range []int{64, 256, 4096} {
		w, rs, _ := trackedPair(t, 8, size, true, true, false)
		w.SetBlockTimeout(time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var wg sync.WaitGroup
		var failed atomic.Bool
		res := make([][3]uint64, len(rs))
		for i, r := range rs {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(i), 1))
				next := uint64(0)
				deliver := func(data []byte, seq, missed uint64) bool {
					if len(data) < 8 || binary.LittleEndian.Uint64(data) != seq || seq != next+missed {
						if !r.Release() {
							res[i][2]++
							res[i][0]++
							res[i][1] += missed
							next = seq + 1
							return true
						}
						t.Errorf("size %d reader %d: seq %d after %d missed %d data %x", size, i, seq, next, missed, data)
						failed.Store(true)
						return false
					}
					// hold the view a while sometimes
					if rng.IntN(200) == 0 {
						time.Sleep(50 * time.Microsecond)
					}
					if !r.Release() {
						res[i][2]++
					}
					next = seq + 1
					res[i][0]++
					res[i][1] += missed
					return true
				}
				for !failed.Load() {
					var err error
					if i == 0 {
						_, err = r.Poll(1+rng.IntN(8), deliver)
					} else {
						var m Msg
						if d, ok := r.TakeNext(); ok {
							m = Msg{Data: d, Seq: r.Pos() - 1}
						} else {
							m, err = r.TryNext()
						}
						if err == nil && !deliver(m.Data, m.Seq, m.Missed) {
							return
						}
					}
					if errors.Is(err, ErrClosed) {
						return
					}
					if errors.Is(err, ErrEmpty) {
						if err := r.Wait(ctx); err != nil {
							t.Errorf("wait: %v", err)
							failed.Store(true)
							return
						}
					} else if err != nil {
						t.Errorf("reader %d: %v", i, err)
						failed.Store(true)
						return
					}
					if rng.IntN(1000) == 0 {
						time.Sleep(200 * time.Microsecond)
					}
				}
			})
		}
		rng := rand.New(rand.NewPCG(9, 9))
		buf := make([]byte, size)
		for seq := range uint64(total) {
			n := 8 + rng.IntN(3)*8
			if rng.IntN(50) == 0 {
				n = 8 + rng.IntN(size-7)
			}
			binary.LittleEndian.PutUint64(buf, seq)
			if err := w.Publish(buf[:n]); err != nil {
				t.Fatal(err)
			}
			if failed.Load() {
				break
			}
		}
		w.Close()
		wg.Wait()
		cancel()
		for i, r := range res {
			if r[0]+r[1] != total && !failed.Load() {
				t.Errorf("size %d reader %d: read %d missed %d torn %d, total %d", size, i, r[0], r[1], r[2], total)
			}
			if i < 2 && (r[1] != 0 || r[2] != 0) {
				t.Errorf("size %d blocking reader %d: missed %d torn %d (writer %+v)", size, i, r[1], r[2], w.Stats())
			}
			t.Logf("size %d reader %d: %v", size, i, r)
		}
		t.Logf("writer %+v", w.Stats())
	}
}
