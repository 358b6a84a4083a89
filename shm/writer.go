package shm

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Writer publishes messages into a ring. There must be exactly one Writer
// per ring, used by one goroutine at a time; TrackReaders, AddReader,
// RemoveReader, Readers, SetBlockTimeout and Stats may also be called from
// other goroutines. By default the Writer never waits for readers; readers
// added with the block policy (AddReader) are the exception.
type Writer struct {
	mem []byte
	g   geometry
	// slot is the slot sequence the writer is in (open) or begins next
	// (!open); off is where its next record goes, from the slot's first
	// record.
	slot     uint64
	off      uint64
	open     bool
	msgs     uint64 // messages published: the next message's number
	bytes    uint64
	loaned   bool
	loanSize uint64
	zeroed   uint64 // the offset Loan stored zero at for the next record
	// loanClass and loanNext: the alignment class and the next record's
	// offset for a record of loanSize bytes (placeNext), for Commit.
	loanClass, loanNext uint64
	futex               *uint32
	// fenceless: Commit and the epoch bracket use plain stores, with no
	// full barrier per message; readers and RemoveReader supply the
	// barrier with membarrier(2) instead (see Wake).
	fenceless bool

	// Tracked readers (track.go). readers is nil until the writer is
	// switched to tracked mode; mu serialises the copy-on-write updates.
	mu           sync.Mutex
	readers      atomic.Pointer[readerSet]
	epoch        atomic.Uint64 // odd while the writer touches cursors
	epochN       uint64        // the writer's copy of epoch
	safeFor      *readerSet    // the set safeMin and safeUntil were computed for
	safeMin      uint64        // the lowest blocking position then: slots needing no more need no check
	safeUntil    uint64        // a slot from which on to check again (a reader was ahead)
	blockTimeout atomic.Int64
	blockSpin    time.Duration          // how long the next wait for a blocking reader spins (adaptive)
	waitAddr     atomic.Pointer[uint32] // futex word a LoanCtx sleeps on

	wakes, waits, demoted atomic.Uint64
}

// NewWriter returns the writer of the ring that Init wrote into mem. It
// continues after the slots and messages the header counts: a new slot,
// so that nothing a previous writer left half-written is appended to.
func NewWriter(mem []byte) (*Writer, error) {
	g, err := readGeometry(mem)
	if err != nil {
		return nil, err
	}
	w := &Writer{
		mem:   mem,
		g:     g,
		slot:  u64(mem, OffSlotSeq).Load(),
		msgs:  u64(mem, OffMessages).Load(),
		bytes: u64(mem, OffBytes).Load(),
	}
	w.endLastSlot()
	u64(mem, OffMessages).Store(w.msgs)
	u64(mem, OffBytes).Store(w.bytes)
	w.futex = addr32(mem, OffFutex)
	w.blockTimeout.Store(int64(DefaultBlockTimeout))
	w.blockSpin = minBlockSpin
	w.fenceless = tso && asymmetricFences()
	flag := uint32(0)
	if w.fenceless {
		flag = 1
	}
	u32(mem, OffFencelessWriter).Store(flag)
	return w, nil
}

// endLastSlot ends the slot a previous writer of the ring was in, if it
// did not: it stores the end word after the slot's last record, so that
// readers in that slot go on to the slots this writer begins. It counts
// that slot's records too: a writer killed between a record's word and
// its store of the counters leaves one message the header does not count,
// which readers read and number.
func (w *Writer) endLastSlot() {
	if w.slot == 0 {
		return
	}
	s := w.slot - 1
	base := w.g.slotOff(s)
	if u64(w.mem, base+SlotOffSeq).Load() != 2*s+1 {
		return // full already, or begun again: nobody reads it as slot s
	}
	first := u64(w.mem, base+SlotOffFirst).Load()
	off, n := uint64(0), uint64(0)
	for {
		word := u64(w.mem, base+SlotOffRecords+int(off)).Load()
		next := nextRecord(off, word, w.g.pack)
		if word&recHiMask != recordHi(s) || next+RecordHeaderSize > w.g.area {
			break
		}
		if first+n >= w.msgs {
			w.msgs++ // not counted yet
			w.bytes += word & recLenMask
		}
		n++
		off = next
		if w.g.doneAt(off) {
			return // the slot is done after this record: no end word
		}
	}
	store64(w.mem, base+SlotOffRecords+int(off), recordHi(s)|recEnd)
	u64(w.mem, base+SlotOffSeq).Store(2*s + 2)
}

// SlotSize returns S, the largest payload a message may have.
func (w *Writer) SlotSize() int { return int(w.g.size) }

// Slots returns N, the number of slots in the ring.
func (w *Writer) Slots() int { return int(w.g.slots) }

// Seq returns the number the next published message will have.
func (w *Writer) Seq() uint64 { return w.msgs }

// Loan returns room for the next message, n bytes long, for the caller to
// fill before Send or Commit. Calling Loan again before Send hands out
// room at the same place if the new size fits there.
//
// The room is in the slot the writer is in if the record fits within the
// slot's first PackBytes (and the slot did not end at its last record,
// see Commit); otherwise Loan ends that slot and begins the next one,
// unless Commit began it already, whose messages of a lap ago are gone
// from then on. If a blocking reader (AddReader) has not finished that
// slot, Loan first waits for it, for at most the block timeout; a reader
// that does not advance in time is demoted to drop and Loan goes on.
func (w *Writer) Loan(n int) ([]byte, error) { return w.loan(nil, n) }

// LoanCtx is Loan, except that a wait for a blocking reader also ends when
// ctx does: then it returns ctx's error, loans nothing and demotes no one.
func (w *Writer) LoanCtx(ctx context.Context, n int) ([]byte, error) { return w.loan(ctx, n) }

func (w *Writer) loan(ctx context.Context, n int) ([]byte, error) {
	if n < 0 || uint64(n) > w.g.size {
		return nil, fmt.Errorf("%w: %d bytes, slot holds %d", ErrTooLarge, n, w.g.size)
	}
	if !w.open || (w.off > 0 && w.off+recordSpan(uint64(n))+RecordHeaderSize > w.g.pack) {
		w.loaned = false // a loan in the slot left behind is gone
		if err := w.nextSlot(ctx); err != nil {
			return nil, err
		}
	}
	w.loaned = true
	w.loanSize = uint64(n)
	base := w.g.slotOff(w.slot) + SlotOffRecords
	// Zero the word where the record after this one will start, now:
	// Commit must have it zero before the record's word is seen, and a
	// store issued before the caller fills the loan has its cache line
	// by then (a reader has that line from the last lap).
	w.loanClass, w.loanNext = placeNext(w.off, uint64(n), w.g.pack)
	w.zeroed = ^uint64(0)
	if !w.lastAt(w.loanNext, uint64(n)) {
		store64(w.mem, base+int(w.loanNext), 0)
		w.zeroed = w.loanNext
	}
	p := base + int(w.off) + RecordHeaderSize
	return w.mem[p : p+n : p+n], nil
}

// lastAt reports whether a record of n bytes whose next record would
// start at next is its slot's last: one more of n bytes would not fit.
func (w *Writer) lastAt(next, n uint64) bool {
	return next+recordSpan(n)+RecordHeaderSize > w.g.pack
}

// nextSlot ends the slot the writer is in, if any, and begins the next.
func (w *Writer) nextSlot(ctx context.Context) error {
	if w.open {
		// The end word, then "full": a reader that sees "full" finds the
		// end word where the records stop.
		off := w.g.slotOff(w.slot)
		store64(w.mem, off+SlotOffRecords+int(w.off), recordHi(w.slot)|recEnd)
		store64(w.mem, off+SlotOffSeq, 2*w.slot+2)
		w.open = false
		w.slot++
	}
	if w.mustAwait() {
		if err := w.awaitReaders(ctx); err != nil {
			return err
		}
	}
	w.begin()
	return nil
}

// beginAheadSlots is the smallest ring whose writer begins the next slot
// as soon as it ends one (beginAhead).
const beginAheadSlots = 8

// beginAhead begins the next slot right after a commit ended the last
// one, unless a blocking reader may still need a message of the slot it
// overwrites (then the next Loan begins it, after waiting). A reader that
// keeps up goes on to that slot at once and polls its first line: begun
// at the next Loan instead, the line would move from under the reader
// twice (the slot's header, then the record). The cost: a reader lagging
// by a whole ring loses its oldest slot one Commit earlier, which rings
// of fewer than beginAheadSlots slots (large messages, where one cache
// line is no matter) are spared.
func (w *Writer) beginAhead() {
	if w.g.slots < beginAheadSlots {
		return
	}
	if w.mustAwait() {
		w.enter()
		blocked := w.scanReaders(w.need()) != nil
		w.leave()
		if blocked {
			return
		}
	}
	w.begin()
}

// begin begins slot w.slot, which is free of blocking readers' needs.
func (w *Writer) begin() {
	off := w.g.slotOff(w.slot)
	// "Begun" first, so that a reader of the lap before sees the slot
	// change before anything in it does. Swap, not Store, where stores may
	// be reordered: a read-modify-write keeps the stores that follow from
	// becoming visible before it.
	if tso {
		store64(w.mem, off+SlotOffSeq, 2*w.slot+1)
	} else {
		u64(w.mem, off+SlotOffSeq).Swap(2*w.slot + 1)
	}
	// The first message's number comes before the first record word, so a
	// reader that took that record reads the number of this lap.
	store64(w.mem, off+SlotOffFirst, w.msgs)
	store64(w.mem, OffSlotSeq, w.slot+1)
	w.off = 0
	w.open = true
}

// Commit publishes the first n bytes of the loan without waking sleeping
// readers; call Wake after a batch. n may not exceed the size passed to
// Loan.
//
// A record after which another of its size would not fit ends its slot.
// In a ring of 8 slots or more, Commit then begins the next slot at once
// (unless a blocking reader still needs a message of the lap it
// overwrites): the oldest slot's messages are gone from then on, and
// views into them are torn.
func (w *Writer) Commit(n int) error { return w.commit(n, 0) }

// CommitBare is Commit for a message whose payload is its data alone,
// not a frame: readers see Msg.Bare (Reader.Bare). A publisher whose
// message goes on the subject every reader of the ring takes for bare
// ones (the hub's ring pattern, a literal subject), with no reply subject
// and no headers, saves the frame's 12 bytes and the subject.
func (w *Writer) CommitBare(n int) error { return w.commit(n, recBare) }

func (w *Writer) commit(n int, flags uint64) error {
	if !w.loaned {
		return ErrNoLoan
	}
	if n < 0 || uint64(n) > w.loanSize {
		return fmt.Errorf("%w: send %d bytes of a %d-byte loan", ErrTooLarge, n, w.loanSize)
	}
	base := w.g.slotOff(w.slot) + SlotOffRecords
	rec := base + int(w.off)
	class, next := w.loanClass, w.loanNext
	if uint64(n) != w.loanSize {
		class, next = placeNext(w.off, uint64(n), w.g.pack)
	}
	// The word where the next record starts says "nothing yet" before
	// this record's word says "here": a reader that takes this record
	// never finds an older lap's record after it. If not even an empty
	// record fits after this one (a large message), the slot ends now,
	// with no word: readers apply the same rule (slotDone) and go on to
	// the next slot without a line to fetch or a loan to wait for.
	full := w.g.doneAt(next)
	if !full && w.lastAt(next, uint64(n)) {
		// The slot's last record: another of its size would not fit
		// after it (a stream's are usually of one size). It ends the
		// slot now, which spares readers the end word's line and a look
		// at the slot word before they go on.
		class, full = classLast, true
	}
	word := recordHi(w.slot) | class<<recAlignShift | flags | uint64(n)
	if !full && next != w.zeroed {
		store64(w.mem, base+int(next), 0) // a shorter send than the loan
	}
	// The record word becomes visible after the payload and the zero. A
	// writer with fences makes it a full barrier too, so that it is
	// visible before Wake loads the readers' sleeping flags (the Dekker
	// argument at Wake); a fenceless one leaves that barrier to its
	// readers.
	if w.fenceless {
		store64(w.mem, rec, word)
	} else {
		u64(w.mem, rec).Store(word)
	}
	w.off = next
	w.loaned = false
	w.msgs++
	w.bytes += uint64(n)
	store64(w.mem, OffMessages, w.msgs)
	store64(w.mem, OffBytes, w.bytes)
	if full {
		// No "full" store either: it would take the slot's first line
		// from a reader once more, and readers go by slotDone here.
		w.open = false
		w.slot++
		w.beginAhead()
	}
	return nil
}

// mustAwait reports whether a blocking reader may still need a message
// of the slot that beginning slot w.slot overwrites (w.slot - N).
func (w *Writer) mustAwait() bool {
	s := w.readers.Load()
	return s != nil && s.nblock > 0 && w.slot >= w.g.slots &&
		(s != w.safeFor || w.slot >= w.safeUntil || w.need() > w.safeMin)
}

// Send publishes the first n bytes of the loaned slot and wakes sleeping
// readers: one futex syscall, which a tracked writer makes only when a
// reader's cursor says it sleeps.
func (w *Writer) Send(n int) error {
	if err := w.Commit(n); err != nil {
		return err
	}
	w.Wake()
	return nil
}

// SendBare is Send with CommitBare.
func (w *Writer) SendBare(n int) error {
	if err := w.CommitBare(n); err != nil {
		return err
	}
	w.Wake()
	return nil
}

// Publish copies p into the next slot and sends it: Loan, copy, Send.
func (w *Writer) Publish(p []byte) error {
	buf, err := w.Loan(len(p))
	if err != nil {
		return err
	}
	copy(buf, p)
	return w.Send(len(p))
}

// PublishCtx is Publish with LoanCtx: a wait for a blocking reader ends
// with ctx.
func (w *Writer) PublishCtx(ctx context.Context, p []byte) error {
	buf, err := w.LoanCtx(ctx, len(p))
	if err != nil {
		return err
	}
	copy(buf, p)
	return w.Send(len(p))
}

// Wake wakes the readers sleeping on the ring: it increments the futex word
// and calls FUTEX_WAKE. In tracked mode it does so only if a tracked
// reader's cursor says it sleeps. The Dekker argument: Commit stores the
// record word before Wake loads the sleeping flags, and a reader stores
// its flag before it loads the record word, each with a full barrier in
// between, so a reader that this Wake skips saw the new message.
//
// The writer's barrier is the "done" store, unless the writer is
// fenceless (x86 with membarrier(2), the ring's OffFencelessWriter flag):
// then its stores and loads are plain, and a reader runs
// membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) between its store and its
// load, which executes a full barrier on the writer's CPU. Either the
// writer's store came before that barrier and the reader's load sees it,
// or the writer's load comes after it and sees the reader's flag. A full
// barrier per message stalls the writer until it owns the slot's cache
// line; a membarrier per sleep costs a reader about a microsecond, after
// it has spun for at least two.
func (w *Writer) Wake() {
	if s := w.readers.Load(); s != nil && (len(s.list) == 0 || !w.anySleeping()) {
		return
	}
	w.wakeAll()
}

// wakeAll increments the futex word and wakes every sleeper, tracked or not.
func (w *Writer) wakeAll() {
	u32(w.mem, OffFutex).Add(1)
	futexWake(w.futex)
	w.wakes.Add(1)
}

// Close marks the ring closed and wakes every reader, tracked or not; they
// return ErrClosed once they have read every message. It does not unmap
// anything.
func (w *Writer) Close() error {
	// An abandoned loan is not published: its record word stays "nothing
	// yet".
	w.loaned = false
	u32(w.mem, OffClosed).Store(1)
	w.wakeAll()
	return nil
}
