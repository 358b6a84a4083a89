package shm

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// modelReader is what a reader should see: the slot it is in, the next
// message number it wants, the misses not yet reported, and the view it
// holds.
type modelReader struct {
	r       *Reader
	slot    uint64 // the slot it is in: its cursor position
	pos     uint64 // the next message it wants (Pos)
	at      uint64 // the next record it looks at, unless resync
	resync  bool   // it has not read a record since it landed in slot
	free    bool   // Rewind: the next message found sets pos, nothing missed
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

// position is what the reader's cursor must say: the message of the view
// it holds, or the next.
func (mr *modelReader) position() uint64 {
	if mr.held {
		return mr.heldSeq
	}
	return mr.pos
}

// ringModel is what the writer should have done: which slot each message
// went to, by the packing rule, computed here from the sizes alone.
type ringModel struct {
	slots, area, pack uint64
	sent              [][]byte     // sent[k] is the payload of message k
	slotOf            []uint64     // slotOf[k] is the slot message k is in
	firstOf           []uint64     // firstOf[s]: messages published when slot s was begun
	bare              map[int]bool // messages sent with SendBare
	started           uint64       // slots begun
	ended             uint64       // slots below this are ended (an end word, or a last record)
	open              bool         // slot started-1 takes more records
	off               uint64       // where its next record goes
}

// place is where a loan of n bytes goes: true if it begins a new slot.
func (m *ringModel) beginsSlot(n int) bool {
	return !m.open || (m.off > 0 && m.off+recordSpan(uint64(n))+RecordHeaderSize > m.pack)
}

func (m *ringModel) begin() {
	m.firstOf = append(m.firstOf, uint64(len(m.sent)))
	m.ended, m.started, m.open, m.off = m.started, m.started+1, true, 0
}

// need is the position every blocking reader must have reached before
// slot b is begun: the first message after the slot it overwrites.
func (m *ringModel) need(b uint64) uint64 {
	switch {
	case b < m.slots:
		return 0
	case m.slots == 1:
		return uint64(len(m.sent))
	}
	return m.firstOf[b-m.slots+1]
}

// end ends the slot the writer is in.
func (m *ringModel) end() { m.ended, m.open = m.started, false }

func (m *ringModel) commit(p []byte) {
	m.sent = append(m.sent, bytes.Clone(p))
	m.slotOf = append(m.slotOf, m.started-1)
	// The next record starts right after this one, or at the next 32
	// (after a record of up to 32 bytes) or 64 bytes (up to 64) from the
	// slot's start, if a word fits there.
	span := RecordHeaderSize + (uint64(len(p))+7)&^7
	next := m.off + span
	for _, a := range []uint64{32, 64} {
		if span <= a {
			if x := (SlotOffRecords+next+a-1)/a*a - SlotOffRecords; x+RecordHeaderSize <= m.pack {
				next = x
			}
			break
		}
	}
	m.off = next
	if next+span+RecordHeaderSize > m.pack {
		m.end() // no record of this size fits after it: the slot ends now
	}
}

// live reports whether slot s holds its own lap (begun and not begun
// again).
func (m *ringModel) live(s uint64) bool { return s < m.started && s+m.slots >= m.started }

// first returns the first message in slot s, if it has one.
func (m *ringModel) first(s uint64) (uint64, bool) {
	for k, ks := range m.slotOf {
		if ks == s {
			return uint64(k), true
		}
	}
	return 0, false
}

// slotFor is Reader.slotFor on the model: the newest live slot whose
// first message is seq or older (found), else the oldest live one.
func (m *ringModel) slotFor(seq uint64) (uint64, bool) {
	if m.started == 0 {
		return 0, false
	}
	cand := m.started - 1
	for i := uint64(0); i < m.slots && i < m.started; i++ {
		s := m.started - 1 - i
		if !m.live(s) {
			break
		}
		cand = s
		if f, ok := m.first(s); ok && f <= seq {
			return cand, true
		}
	}
	return cand, false
}

// seekSlot is slotFor's slot alone.
func (m *ringModel) seekSlot(seq uint64) uint64 {
	s, _ := m.slotFor(seq)
	return s
}

// TestRingModel drives one writer and several readers on an in-process
// ring through random interleavings of publishes (sizes 0..S, loans),
// reads, releases and late joins, and checks every result against a
// model: which slot each message is packed into, exact contents, order,
// and missed counts equal to what the writer overwrote. Readers may have
// cursors, tracked by the writer or not, with the drop or the block
// policy; the block timeout is a nanosecond, so a slot a blocking reader
// holds up demotes it at once (or, with a cancelled ctx, fails and
// demotes no one). The model checks the cursor positions (slots), which
// loans wait and whom they demote, and the number of wake-ups: one per
// Send untracked, one per AddReader tracked (no reader ever sleeps here).
func TestRingModel(t *testing.T) {
	// A thousand cases unless -rapid.checks says otherwise (-short: the
	// default hundred); about 10,000 messages, a few hundred laps.
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == f.DefValue && !testing.Short() {
		f.Value.Set("1000")
		defer f.Value.Set(f.DefValue)
	}
	rapid.Check(t, func(t *rapid.T) {
		slots := 1 << rapid.IntRange(0, 4).Draw(t, "log2slots")
		// 1000 and 4100: slots cut at the packing limit (PackBytes).
		size := rapid.SampledFrom([]int{0, 1, 7, 16, 64, 200, 1000, 4100}).Draw(t, "slotSize")
		mem := newRing(t, slots, size)
		w, err := NewWriter(mem)
		if err != nil {
			t.Fatal(err)
		}
		track := rapid.IntRange(0, 3).Draw(t, "tracked") > 0
		if track {
			w.TrackReaders()
		}
		w.SetBlockTimeout(time.Nanosecond)
		area := areaFor(uint64(size))
		m := &ringModel{slots: uint64(slots), area: area, pack: min(area, PackBytes), bare: map[int]bool{}}
		var sends, adds, waits, demoted, nextID uint64
		var (
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
		addReader := func(t *rapid.T) {
			r, err := NewReader(mem)
			if err != nil {
				t.Fatal(err)
			}
			mr := &modelReader{r: r, pos: uint64(len(m.sent)), slot: m.seekSlot(uint64(len(m.sent))), resync: true}
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
		// blockers applies the block policy to beginning the next slot:
		// the blocking readers it has to wait for, demoted unless the loan
		// is cancelled. Positions never move back for blocking readers
		// here (no Rewind or Seek), so the writer's cached bound never
		// hides one.
		blockers := func(cancelled bool) bool {
			need, any := m.need(m.started), false
			for _, mr := range readers {
				if mr.block && !mr.demoted && mr.position() < need {
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
		// held reports whether a blocking reader holds up beginning the
		// next slot, as blockers, for a writer that does not wait
		// (Writer.beginAhead).
		held := func() bool {
			need := m.need(m.started)
			for _, mr := range readers {
				if mr.block && !mr.demoted && mr.position() < need {
					return true
				}
			}
			return false
		}
		// loan mirrors a Loan of n bytes that goes ahead.
		loan := func(n int) {
			if m.beginsSlot(n) {
				m.begin()
			}
		}
		addReader(t)
		pickReader := func(t *rapid.T) *modelReader {
			return readers[rapid.IntRange(0, len(readers)-1).Draw(t, "reader")]
		}
		// expectNext applies the model to a read and returns the message
		// the reader must get, or ok=false if it must get nothing. A
		// reader whose slot was begun again lands a quarter ring past the
		// oldest slot (lapMargin); it moves to the next slot once the
		// writer has ended its own (an end word, or its last record).
		expectNext := func(mr *modelReader) (seq, missed uint64, ok bool) {
			for {
				s := mr.slot
				if s < m.started && !m.live(s) {
					// The next slot if it is still live, else the slot of
					// the message it wants if the ring still has it (not
					// after a Rewind), else a quarter ring past the oldest.
					t := s + 1
					if !m.live(t) {
						if f, found := m.slotFor(mr.pos); found && f > s && !mr.free {
							t = f
						} else if n := uint64(slots); m.started > n {
							t = max(t, min(m.started-n+1+lapMargin(n), m.started-1))
						}
					}
					mr.slot, mr.resync = t, true
					continue
				}
				for k := range m.sent {
					if m.slotOf[k] != s {
						continue
					}
					if !mr.resync && uint64(k) < mr.at {
						continue // read or passed over already
					}
					mr.resync = false // a record of the slot read
					mr.at = uint64(k) + 1
					if mr.free {
						mr.pos, mr.free = uint64(k), false
					}
					if uint64(k) < mr.pos {
						continue // passed over (Seek)
					}
					if d := uint64(k) - mr.pos; d > 0 {
						mr.pending += d
						mr.missed += d
					}
					seq, missed = uint64(k), mr.pending
					mr.pos = seq + 1
					mr.pending = 0
					return seq, missed, true
				}
				if s < m.ended {
					mr.slot++ // the end word
					continue
				}
				return 0, 0, false
			}
		}
		check := func(t *rapid.T, mr *modelReader, msg Msg, err error, copied bool) {
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
					t.Fatalf("read: got %v (msg seq %d), want %v", err, msg.Seq, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %v, want message %d", err, seq)
			}
			if msg.Seq != seq || msg.Missed != missed || !bytes.Equal(msg.Data, m.sent[seq]) || msg.Bare != m.bare[int(seq)] || mr.r.Bare() != msg.Bare {
				t.Fatalf("read: got seq %d missed %d data %x bare %v (reader says %v), want seq %d missed %d data %x bare %v",
					msg.Seq, msg.Missed, msg.Data, msg.Bare, mr.r.Bare(), seq, missed, m.sent[seq], m.bare[int(seq)])
			}
			if !copied {
				mr.held, mr.heldSeq, mr.view = true, seq, msg.Data
			}
		}
		publish := func(p []byte) {
			m.commit(p)
			if !m.open && m.slots >= beginAheadSlots && !held() {
				m.begin() // the slot ended at the commit: begun ahead
			}
			nbytes += uint64(len(p))
			loaned = false
		}

		t.Repeat(map[string]func(*rapid.T){
			"publish": func(t *rapid.T) {
				if closed {
					t.Skip("closed")
				}
				// A burst, of one size or not (a stream's messages are
				// usually of one size: slots then end at a class-3
				// record). Contents are made, not drawn: a draw per
				// byte made cases short.
				burst := rapid.IntRange(1, 16).Draw(t, "burst")
				same := rapid.Bool().Draw(t, "sameSize")
				n0 := rapid.IntRange(0, size).Draw(t, "n0")
				for b := range burst {
					n := n0
					if !same {
						n = rapid.IntRange(0, size).Draw(t, "n")
					}
					p := make([]byte, n)
					for i := range p {
						p[i] = byte(len(m.sent) + i + b)
					}
					if m.beginsSlot(len(p)) {
						blockers(false)
					}
					loan(len(p))
					if err := w.Publish(p); err != nil {
						t.Fatal(err)
					}
					publish(p)
					sends++
				}
			},
			"loan": func(t *rapid.T) {
				if closed {
					t.Skip("closed")
				}
				n := rapid.IntRange(0, size).Draw(t, "loan")
				ctx := context.Background()
				begins := m.beginsSlot(n)
				if begins && rapid.Bool().Draw(t, "cancelled") {
					ctx = canceled
					if blockers(true) {
						if _, err := w.LoanCtx(ctx, n); !errors.Is(err, context.Canceled) {
							t.Fatalf("LoanCtx held up by a blocking reader: %v, want Canceled", err)
						}
						// The slot the writer was in is full now: the next
						// loan begins one, whatever its size.
						m.end()
						loaned = false
						return
					}
				} else if begins {
					blockers(false)
				}
				loan(n)
				buf, err := w.LoanCtx(ctx, n)
				if err != nil || len(buf) != n {
					t.Fatalf("Loan(%d) = %d bytes, %v", n, len(buf), err)
				}
				fill := make([]byte, n)
				for i := range fill {
					fill[i] = byte(i*7 + len(m.sent))
				}
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
				bare := rapid.Bool().Draw(t, "bare")
				send := w.Send
				if bare {
					send = w.SendBare
				}
				if err := send(n); err != nil {
					t.Fatal(err)
				}
				publish(loanBuf[:n])
				m.bare[len(m.sent)-1] = bare
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
				// Rarely: rapid favours the first action in order, which
				// is this one, and a closed ring takes no more messages.
				if rapid.IntRange(0, 99).Draw(t, "reallyClose") > 0 {
					return
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
					return // a blocking reader's position only moves forward in this model
				}
				mr.r.Rewind()
				mr.held = false
				mr.slot, mr.resync, mr.free, mr.pos = 0, true, true, 0
				if m.started > uint64(slots) {
					mr.slot = m.started - uint64(slots)
				}
				if mr.slot < m.started {
					// Pos says the slot's first message; an empty slot's
					// is the next one.
					mr.pos = uint64(len(m.sent))
					if f, ok := m.first(mr.slot); ok {
						mr.pos = f
					}
				}
			},
			"seek": func(t *rapid.T) {
				mr := pickReader(t)
				if mr.block {
					return // a blocking reader's position only moves forward in this model
				}
				seq := rapid.Uint64Range(0, uint64(len(m.sent))+2).Draw(t, "seek")
				mr.r.Seek(seq)
				mr.held = false
				mr.pos, mr.slot, mr.resync, mr.free = seq, m.seekSlot(seq), true, false
			},
			"remove": func(t *rapid.T) {
				mr := pickReader(t)
				if mr.id == 0 {
					return // not tracked
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
				// The case TakeNext is for: no view, nothing to report, in
				// step, the next message at the reader's place.
				easy := !held && mr.pending == 0 && !mr.resync && !mr.free && mr.at == mr.pos && mr.pos < uint64(len(m.sent)) &&
					m.slotOf[mr.pos] == mr.slot && m.live(mr.slot)
				data, ok := mr.r.TakeNext()
				if !ok {
					if easy {
						t.Fatalf("TakeNext found nothing; message %d is next in slot %d", mr.pos, mr.slot)
					}
					if mr.r.Pos() != pos || mr.held != held {
						t.Fatalf("TakeNext found nothing but moved the reader from %d to %d", pos, mr.r.Pos())
					}
					return
				}
				if held {
					t.Fatal("TakeNext took a message while a view was held")
				}
				check(t, mr, Msg{Data: data, Seq: mr.r.Pos() - 1, Bare: mr.r.Bare()}, nil, false)
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
					check(t, mr, Msg{Data: data, Seq: seq, Missed: missed, Bare: mr.r.Bare()}, nil, false)
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
				_, msg, err := mr.r.Recv(canceled, nil)
				check(t, mr, msg, err, true)
			},
			"release": func(t *rapid.T) {
				mr := pickReader(t)
				var want bool = true
				var view []byte
				if mr.held {
					// Intact unless the writer began the view's slot again.
					want = m.live(m.slotOf[mr.heldSeq])
					view = bytes.Clone(mr.view)
				}
				if got := mr.r.Release(); got != want {
					t.Fatalf("Release = %v, want %v (held %v seq %d, slots begun %d)", got, want, mr.held, mr.heldSeq, m.started)
				}
				if mr.held && want && !bytes.Equal(view, m.sent[mr.heldSeq]) {
					t.Fatalf("intact view %x, want %x", view, m.sent[mr.heldSeq])
				}
				mr.held = false
			},
			"": func(t *rapid.T) {
				st, err := ReadStats(mem)
				if err != nil {
					t.Fatal(err)
				}
				want := Stats{WriteSeq: uint64(len(m.sent)), SlotSeq: m.started, Messages: uint64(len(m.sent)), Bytes: nbytes, Closed: closed}
				if st != want {
					t.Fatalf("stats %+v, want %+v", st, want)
				}
				for i, mr := range readers {
					if st := mr.r.Stats(); mr.block && !mr.demoted && (st.Missed != 0 || st.Torn != 0) {
						t.Fatalf("blocking reader %d, never demoted: %+v", i, st)
					}
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
