package shm

import (
	"bytes"
	"context"
	"errors"
	"testing"

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
}

// TestRingModel drives one writer and several readers on an in-process
// ring through random interleavings of publishes (sizes 0..S, loans),
// reads, releases and late joins, and checks every result against a
// model: exact contents, order, and missed counts equal to what the writer
// overwrote.
func TestRingModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		slots := 1 << rapid.IntRange(0, 3).Draw(t, "log2slots")
		size := rapid.SampledFrom([]int{0, 1, 7, 16, 64}).Draw(t, "slotSize")
		mem := newRing(t, slots, size)
		w, err := NewWriter(mem)
		if err != nil {
			t.Fatal(err)
		}
		var (
			sent     [][]byte // sent[seq] is the payload of message seq
			loaned   bool
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
			if loaned {
				return uint64(len(sent)) + 1
			}
			return uint64(len(sent))
		}
		addReader := func(t *rapid.T) {
			r, err := NewReader(mem)
			if err != nil {
				t.Fatal(err)
			}
			readers = append(readers, &modelReader{r: r, pos: uint64(len(sent))})
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
			if loaned && land+n == w {
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
		}

		t.Repeat(map[string]func(*rapid.T){
			"publish": func(t *rapid.T) {
				if closed {
					t.Skip("closed")
				}
				p := rapid.SliceOfN(rapid.Byte(), 0, size).Draw(t, "payload")
				if err := w.Publish(p); err != nil {
					t.Fatal(err)
				}
				publish(p)
			},
			"loan": func(t *rapid.T) {
				if closed {
					t.Skip("closed")
				}
				n := rapid.IntRange(0, size).Draw(t, "loan")
				buf, err := w.Loan(n)
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
				mr.r.Rewind()
				mr.held = false
				mr.pos = 0
				if n := uint64(len(sent)); n > uint64(slots) {
					mr.pos = n - uint64(slots)
				}
			},
			"tryNext": func(t *rapid.T) {
				mr := pickReader(t)
				m, err := mr.r.TryNext()
				check(t, mr, m, err, false)
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
				}
			},
		})
	})
}
