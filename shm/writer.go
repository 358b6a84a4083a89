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
	mem      []byte
	g        geometry
	seq      uint64 // next sequence to publish
	msgs     uint64
	bytes    uint64
	loaned   bool
	loanSize uint64
	marked   uint64 // seq+1 when Commit marked slot seq "writing" ahead; 0 if not
	futex    *uint32
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
	safeFor      *readerSet    // the set safeUntil was computed for
	safeUntil    uint64        // loans below this need no blocking check
	blockTimeout atomic.Int64
	blockSpin    time.Duration          // how long the next wait for a blocking reader spins (adaptive)
	waitAddr     atomic.Pointer[uint32] // futex word a LoanCtx sleeps on

	wakes, waits, demoted atomic.Uint64
}

// NewWriter returns the writer of the ring that Init wrote into mem. It
// continues from the write sequence stored in the header.
func NewWriter(mem []byte) (*Writer, error) {
	g, err := readGeometry(mem)
	if err != nil {
		return nil, err
	}
	w := &Writer{
		mem:   mem,
		g:     g,
		seq:   u64(mem, OffWriteSeq).Load(),
		msgs:  u64(mem, OffMessages).Load(),
		bytes: u64(mem, OffBytes).Load(),
	}
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

// SlotSize returns S, the largest payload a message may have.
func (w *Writer) SlotSize() int { return int(w.g.size) }

// Slots returns N, the number of slots in the ring.
func (w *Writer) Slots() int { return int(w.g.slots) }

// Seq returns the sequence the next published message will have.
func (w *Writer) Seq() uint64 { return w.seq }

// Loan returns the payload area of the next slot, n bytes long, for the
// caller to fill before Send or Commit. From this call on, readers see the
// slot as being written: the message that occupied it (sequence Seq()-N) is
// gone. Calling Loan again before Send hands out the same slot.
//
// If a blocking reader (AddReader) has not finished that message, Loan
// first waits for it, for at most the block timeout; a reader that does
// not advance in time is demoted to drop and Loan goes on.
func (w *Writer) Loan(n int) ([]byte, error) { return w.loan(nil, n) }

// LoanCtx is Loan, except that a wait for a blocking reader also ends when
// ctx does: then it returns ctx's error, loans nothing and demotes no one.
func (w *Writer) LoanCtx(ctx context.Context, n int) ([]byte, error) { return w.loan(ctx, n) }

func (w *Writer) loan(ctx context.Context, n int) ([]byte, error) {
	if n < 0 || uint64(n) > w.g.size {
		return nil, fmt.Errorf("%w: %d bytes, slot holds %d", ErrTooLarge, n, w.g.size)
	}
	off := w.g.slotOff(w.seq)
	if !w.loaned {
		if w.marked != w.seq+1 {
			if w.mustAwait() {
				if err := w.awaitReaders(ctx); err != nil {
					return nil, err
				}
			}
			// Swap, not Store, where stores may be reordered: a
			// read-modify-write keeps the payload stores that follow from
			// becoming visible before "writing".
			if tso {
				store64(w.mem, off+SlotOffSeq, 2*w.seq+1)
			} else {
				u64(w.mem, off+SlotOffSeq).Swap(2*w.seq + 1)
			}
		}
		w.loaned = true
	}
	w.loanSize = uint64(n)
	p := off + SlotOffPayload
	return w.mem[p : p+n : p+n], nil
}

// Commit publishes the first n bytes of the loaned slot without waking
// sleeping readers; call Wake after a batch. n may not exceed the size
// passed to Loan.
func (w *Writer) Commit(n int) error {
	if !w.loaned {
		return ErrNoLoan
	}
	if n < 0 || uint64(n) > w.loanSize {
		return fmt.Errorf("%w: send %d bytes of a %d-byte loan", ErrTooLarge, n, w.loanSize)
	}
	off := w.g.slotOff(w.seq)
	store32(w.mem, off+SlotOffLen, uint32(n))
	// "done" becomes visible after the payload and the length. A writer
	// with fences makes it a full barrier too, so that it is visible
	// before Wake loads the readers' sleeping flags (the Dekker argument
	// at Wake); a fenceless one leaves that barrier to its readers.
	if w.fenceless {
		store64(w.mem, off+SlotOffSeq, 2*w.seq+2)
	} else {
		u64(w.mem, off+SlotOffSeq).Store(2*w.seq + 2)
	}
	w.seq++
	w.loaned = false
	store64(w.mem, OffWriteSeq, w.seq)
	w.msgs++
	w.bytes += uint64(n)
	store64(w.mem, OffMessages, w.msgs)
	store64(w.mem, OffBytes, w.bytes)
	w.markAhead()
	return nil
}

// markAheadSlots is the smallest ring whose writer marks slots ahead.
const markAheadSlots = 8

// mustAwait reports whether a blocking reader may still need the message
// that loaning slot w.seq overwrites (w.seq - N).
func (w *Writer) mustAwait() bool {
	s := w.readers.Load()
	return s != nil && s.nblock > 0 && (s != w.safeFor || w.seq >= w.safeUntil)
}

// markAhead marks the next slot "writing" now, unless a blocking reader
// may still need the message it holds (then Loan marks it, after waiting).
// A reader that keeps up polls exactly that slot: marking it at Loan would
// take the cache line from under the reader while it polls (and, on x86,
// stall the writer for it); marked here, the slot's line moves to the
// reader once per message. The cost: a reader lagging by exactly N loses
// the oldest message one Commit earlier, which rings of fewer than
// markAheadSlots slots (large messages, where one cache line is no matter)
// are spared.
func (w *Writer) markAhead() {
	if w.g.slots < markAheadSlots || w.mustAwait() {
		w.marked = 0
		return
	}
	off := w.g.slotOff(w.seq) + SlotOffSeq
	if tso {
		store64(w.mem, off, 2*w.seq+1)
	} else {
		u64(w.mem, off).Swap(2*w.seq + 1)
	}
	w.marked = w.seq + 1
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
// write sequence before Wake loads the sleeping flags, and a reader stores
// its flag before it loads the write sequence, each with a full barrier in
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
	if w.loaned {
		// The abandoned loan is not published; the slot stays marked as
		// being written, so readers count the message it held as missed.
		w.loaned = false
	}
	u32(w.mem, OffClosed).Store(1)
	w.wakeAll()
	return nil
}
