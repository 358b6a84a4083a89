package shm

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// modelReader is what a reader should see: its position, the misses not
// yet reported, and the view it holds.
type modelReader struct {
	r       *Reader
	pos     uint64
	pending uint64
	missed  uint64
	held    bool
	heldSeq uint64
	view    []byte

	cur     *Cursor // attached cursor, or nil
	id      uint64  // writer's id for it, 0 if not tracked
	block   bool    // tracked with the block policy
	demoted bool
}

// position is what the reader's cursor must say.
func (mr *modelReader) position() uint64 {
	if mr.held {
		return mr.heldSeq
	}
	return mr.pos
}

// TestRingModel drives one writer and several readers on an in-process
// ring through random interleavings of publishes (sizes 0..S, loans),
// reads, releases and late joins, and checks every result against a
// model: exact contents, order, and missed counts equal to what the writer
// overwrote. Readers may have cursors, tracked by the writer or not, with
// the drop or the block policy; the block timeout is a nanosecond, so a
// loan a blocking reader holds up demotes it at once (or, with a cancelled
// ctx, fails and demotes no one). The model checks the cursor positions,
// which loans wait and whom they demote, and the number of wake-ups: one
// per Send untracked, one per AddReader tracked (no reader ever sleeps
// here).
func TestRingModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		slots := 1 << rapid.IntRange(0, 3).Draw(t, "log2slots") // up to 8: markAheadSlots, and posEvery 1 (exact cursors)
		size := rapid.SampledFrom([]int{0, 1, 7, 16, 64}).Draw(t, "slotSize")
		mem := newRing(t, slots, size)
		w, err := NewWriter(mem)
		if err != nil {
			t.Fatal(err)
		}
		track := rapid.Bool().Draw(t, "tracked")
		if track {
			w.TrackReaders()
		}
		w.SetBlockTimeout(time.Nanosecond)
		var sends, adds, waits, demoted, nextID uint64
		var (
			sent     [][]byte // sent[seq] is the payload of message seq
			loaned   bool
			marked   bool // the writer marked slot len(sent) "writing" ahead (markAhead)
			loanBuf  []byte
			closed   bool
			readers  []*modelReader
			nbytes   uint64
			canceled = func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			}()
		)
		started := func() uint64 { // sequences the writer has begun to write
			if loaned || marked {
				return uint64(len(sent)) + 1
			}
			return uint64(len(sent))
		}
		addReader := func(t *rapid.T) {
			r, err := NewReader(mem)
			if err != nil {
				t.Fatal(err)
			}
			mr := &modelReader{r: r, pos: uint64(len(sent))}
			// none, attached only, tracked dropping, tracked blocking
			kinds := 2
			if track {
				kinds = 4
			}
			if kind := rapid.IntRange(0, kinds-1).Draw(t, "cursor"); kind > 0 {
				mr.cur = memCursor(t)
				if err := r.AttachCursor(mr.cur); err != nil {
					t.Fatal(err)
				}
				if kind >= 2 {
					nextID++
					mr.id, mr.block = nextID, kind == 3
					if err := w.AddReader(mr.id, mr.cur, mr.block); err != nil {
						t.Fatal(err)
					}
					adds++
				}
			}
			readers = append(readers, mr)
		}
		// blockers applies the block policy to a loan of the next
		// sequence: the blocking readers it has to wait for, demoted
		// unless the loan is cancelled. Positions never move back for
		// blocking readers here (no Rewind or Seek), so the writer's
		// cached bound never hides one.
		blockers := func(cancelled bool) bool {
			seq, any := uint64(len(sent)), false
			for _, mr := range readers {
				if mr.block && !mr.demoted && seq-mr.position() >= uint64(slots) && mr.position() <= seq {
					any = true
					if !cancelled {
						mr.demoted = true
						demoted++
					}
				}
			}
			if any {
				waits++
			}
			return any
		}
		addReader(t)
		pickReader := func(t *rapid.T) *modelReader {
			return readers[rapid.IntRange(0, len(readers)-1).Draw(t, "reader")]
		}
		// expectNext applies the model to a read and returns the message
		// the reader must get, or ok=false if it must get nothing.
		expectNext := func(mr *modelReader) (seq, missed uint64, ok bool) {
			// A reader more than a ring behind lands a quarter ring past
			// the oldest message (lapMargin); one that would read the slot
			// under a loan was overtaken and lands past that slot too.
			w, n, margin := uint64(len(sent)), uint64(slots), uint64(slots)/4
			land := mr.pos
			if w > n && mr.pos < w-n {
				land = w - n + margin
			}
			if (loaned || marked) && land+n == w {
				land = w + 1 - n + margin
			}
			if d := land - mr.pos; d > 0 {
				mr.pos += d
				mr.pending += d
				mr.missed += d
			}
			if mr.pos >= uint64(len(sent)) {
				return 0, 0, false
			}
			seq, missed = mr.pos, mr.pending
			mr.pos++
			mr.pending = 0
			return seq, missed, true
		}
		check := func(t *rapid.T, mr *modelReader, m Msg, err error, copied bool) {
			if mr.held && !copied {
				mr.held = false // Next/TryNext released the previous view
			}
			seq, missed, ok := expectNext(mr)
			if !ok {
				want := ErrEmpty
				if closed {
					want = ErrClosed
				}
				if copied {
					want = context.Canceled
					if closed {
						want = ErrClosed
					}
				}
				if !errors.Is(err, want) {
					t.Fatalf("read: got %v (msg seq %d), want %v", err, m.Seq, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %v, want message %d", err, seq)
			}
			if m.Seq != seq || m.Missed != missed || !bytes.Equal(m.Data, sent[seq]) {
				t.Fatalf("read: got seq %d missed %d data %x, want seq %d missed %d data %x",
					m.Seq, m.Missed, m.Data, seq, missed, sent[seq])
			}
			if !copied {
				mr.held, mr.heldSeq, mr.view = true, seq, m.Data
			}
		}
		publish := func(p []byte) {
			sent = append(sent, bytes.Clone(p))
			nbytes += uint64(len(p))
			loaned = false
			// Whether Commit marked the next slot ahead depends on which
			// blocking readers the writer may still have to wait for,
			// which it estimates conservatively (safeUntil): take its
			// decision, and check that it is never made for a ring too
			// small for it, and that readers see its effects.
			marked = w.marked == w.seq+1
			if marked && slots < markAheadSlots {
				t.Fatalf("a ring of %d slots marked ahead", slots)
			}
		}

		t.Repeat(map[string]func(*rapid.T){
			"publish": func(t *rapid.T) {
				if closed {
					t.Skip("closed")
				}
				p := rapid.SliceOfN(rapid.Byte(), 0, size).Draw(t, "payload")
				if !loaned {
					blockers(false)
				}
				if err := w.Publish(p); err != nil {
					t.Fatal(err)
				}
				publish(p)
				sends++
			},
			"loan": func(t *rapid.T) {
				if closed {
					t.Skip("closed")
				}
				n := rapid.IntRange(0, size).Draw(t, "loan")
				ctx := context.Background()
				if !loaned && rapid.Bool().Draw(t, "cancelled") {
					ctx = canceled
					if blockers(true) {
						if _, err := w.LoanCtx(ctx, n); !errors.Is(err, context.Canceled) {
							t.Fatalf("LoanCtx held up by a blocking reader: %v, want Canceled", err)
						}
						return
					}
				} else if !loaned {
					blockers(false)
				}
				buf, err := w.LoanCtx(ctx, n)
				if err != nil || len(buf) != n {
					t.Fatalf("Loan(%d) = %d bytes, %v", n, len(buf), err)
				}
				fill := rapid.SliceOfN(rapid.Byte(), n, n).Draw(t, "fill")
				copy(buf, fill)
				loaned, loanBuf = true, fill
			},
			"send": func(t *rapid.T) {
				if !loaned {
					if err := w.Send(0); !errors.Is(err, ErrNoLoan) {
						t.Fatalf("Send without loan: %v", err)
					}
					return
				}
				n := rapid.IntRange(0, len(loanBuf)).Draw(t, "send")
				if err := w.Send(len(loanBuf) + 1); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("Send beyond loan: %v", err)
				}
				if err := w.Send(n); err != nil {
					t.Fatal(err)
				}
				publish(loanBuf[:n])
				sends++
			},
			"oversize": func(t *rapid.T) {
				if _, err := w.Loan(size + 1); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("Loan(S+1): %v", err)
				}
				if err := w.Publish(make([]byte, size+1)); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("Publish(S+1): %v", err)
				}
			},
			"close": func(t *rapid.T) {
				if closed || loaned {
					t.Skip("closed or loaned")
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				closed = true
			},
			"join": func(t *rapid.T) {
				if len(readers) >= 4 {
					t.Skip("enough readers")
				}
				addReader(t)
			},
			"rewind": func(t *rapid.T) {
				mr := pickReader(t)
				if mr.block {
					t.Skip("a blocking reader's position only moves forward in this model")
				}
				mr.r.Rewind()
				mr.held = false
				mr.pos = 0
				if n := uint64(len(sent)); n >= uint64(slots) {
					mr.pos = n - uint64(slots)
					if loaned || marked {
						mr.pos++ // Rewind skips the slot being written
					}
				}
			},
			"seek": func(t *rapid.T) {
				mr := pickReader(t)
				if mr.block {
					t.Skip("a blocking reader's position only moves forward in this model")
				}
				seq := rapid.Uint64Range(0, uint64(len(sent))+2).Draw(t, "seek")
				mr.r.Seek(seq)
				mr.held = false
				mr.pos = seq
			},
			"remove": func(t *rapid.T) {
				mr := pickReader(t)
				if mr.id == 0 {
					t.Skip("not tracked")
				}
				if !w.RemoveReader(mr.id) {
					t.Fatalf("reader %d was not tracked", mr.id)
				}
				mr.id, mr.block = 0, false
			},
			"tryNext": func(t *rapid.T) {
				mr := pickReader(t)
				m, err := mr.r.TryNext()
				check(t, mr, m, err, false)
			},
			"takeNext": func(t *rapid.T) {
				mr := pickReader(t)
				pos, held := mr.r.Pos(), mr.held
				data, ok := mr.r.TakeNext()
				if !ok {
					if mr.r.Pos() != pos || mr.held != held {
						t.Fatalf("TakeNext found nothing but moved the reader from %d to %d", pos, mr.r.Pos())
					}
					return
				}
				if held {
					t.Fatal("TakeNext took a message while a view was held")
				}
				check(t, mr, Msg{Data: data, Seq: mr.r.Pos() - 1}, nil, false)
			},
			"poll": func(t *rapid.T) {
				mr := pickReader(t)
				max := rapid.IntRange(1, 4).Draw(t, "max")
				stopAt := rapid.IntRange(1, 5).Draw(t, "stopAt") // fn says stop at this message
				releaseInside := rapid.Bool().Draw(t, "releaseInside")
				mr.held = false // Poll releases the view first
				calls := 0
				n, err := mr.r.Poll(max, func(data []byte, seq, missed uint64) bool {
					calls++
					check(t, mr, Msg{Data: data, Seq: seq, Missed: missed}, nil, false)
					if releaseInside && !mr.r.Release() {
						t.Fatalf("Release inside Poll of message %d reported it torn", seq)
					}
					mr.held = false // released inside, or by Poll after fn
					return calls != stopAt
				})
				if n != calls {
					t.Fatalf("Poll returned %d, fn was called %d times", n, calls)
				}
				if n == max || calls == stopAt {
					if err != nil {
						t.Fatalf("Poll stopped after %d of max %d (stop at %d) with %v", n, max, stopAt, err)
					}
					return
				}
				check(t, mr, Msg{}, err, false) // nothing more: ErrEmpty or ErrClosed
			},
			"recv": func(t *rapid.T) {
				mr := pickReader(t)
				if mr.held {
					// Recv releases the view first, like Next.
					mr.held = false
				}
				_, m, err := mr.r.Recv(canceled, nil)
				check(t, mr, m, err, true)
			},
			"release": func(t *rapid.T) {
				mr := pickReader(t)
				var want bool = true
				var view []byte
				if mr.held {
					// Intact unless the writer began sequence heldSeq+N.
					want = started() <= mr.heldSeq+uint64(slots)
					view = bytes.Clone(mr.view)
				}
				if got := mr.r.Release(); got != want {
					t.Fatalf("Release = %v, want %v (held %v seq %d, started %d)", got, want, mr.held, mr.heldSeq, started())
				}
				if mr.held && want && !bytes.Equal(view, sent[mr.heldSeq]) {
					t.Fatalf("intact view %x, want %x", view, sent[mr.heldSeq])
				}
				mr.held = false
			},
			"": func(t *rapid.T) {
				st, err := ReadStats(mem)
				if err != nil {
					t.Fatal(err)
				}
				want := Stats{WriteSeq: uint64(len(sent)), Messages: uint64(len(sent)), Bytes: nbytes, Closed: closed}
				if st != want {
					t.Fatalf("stats %+v, want %+v", st, want)
				}
				for i, mr := range readers {
					if got := mr.r.Stats().Missed; got != mr.missed {
						t.Fatalf("reader %d: missed %d, want %d", i, got, mr.missed)
					}
					if mr.r.Pos() != mr.pos {
						t.Fatalf("reader %d: pos %d, model %d", i, mr.r.Pos(), mr.pos)
					}
					if mr.cur != nil && mr.cur.Position() != mr.position() {
						t.Fatalf("reader %d: cursor says %d, model %d", i, mr.cur.Position(), mr.position())
					}
				}
				wantWakes := sends
				if track {
					wantWakes = adds // AddReader wakes once; Send never here
				}
				if closed {
					wantWakes++
				}
				if ws := w.Stats(); ws != (WriterStats{Wakes: wantWakes, Waits: waits, Demoted: demoted}) {
					t.Fatalf("writer stats %+v, want wakes %d waits %d demoted %d", ws, wantWakes, waits, demoted)
				}
			},
		})
	})
}
