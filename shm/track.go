package shm

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// The writer's view of its readers' cursor blocks: which readers exist,
// whether they sleep (so Send can skip FUTEX_WAKE) and where they are (so
// Loan can wait for blocking readers). See Writer.AddReader.

const (
	// DefaultBlockTimeout is how long a writer waits for one blocking
	// reader, in one Loan, before it demotes that reader to drop.
	DefaultBlockTimeout = 5 * time.Second
	// A writer polls a blocking reader's position for between minBlockSpin
	// and maxBlockSpin before it sleeps on the reader's cursor futex: the
	// budget doubles when the reader moved while the writer spun and
	// halves when the writer had to sleep. A reader that serves other
	// readers in turn (one pump reading ten rings) frees a slot within a
	// hundred µs or so, and a writer that slept each time paid a futex
	// round trip per wait and left the reader idle meanwhile (a fan-out
	// to ten subscriptions ran 6–27% faster with 200 µs than with 20 µs);
	// a reader that stalls for long costs the writer at most the minimum
	// per wait after a few waits.
	minBlockSpin = 20 * time.Microsecond
	maxBlockSpin = 200 * time.Microsecond
	// blockNapDefault bounds one FUTEX_WAIT of a blocked writer: it rechecks the
	// reader set, its ctx and its deadline at least this often, so a
	// wake-up that never comes costs at most this much.
	blockNapDefault = 10 * time.Millisecond
)

// readerSet is an immutable snapshot of a writer's tracked readers,
// replaced as a whole (copy on write) by AddReader and RemoveReader.
type readerSet struct {
	list   []*tracked
	nblock int // readers added with block set (demoted or not)
}

// tracked is one reader as the writer sees it. The writer maps the cursor
// read-only; everything it loads from it is a hint from a possibly hostile
// reader, loaded once and never used as an index.
type tracked struct {
	id       uint64
	cur      *Cursor
	pos      *atomic.Uint64
	sleeping *atomic.Uint32
	futex    *atomic.Uint32
	addr     *uint32 // the futex word, for the syscalls
	block    bool
	demoted  atomic.Bool // set by the writer only
}

// blockNap is blockNapDefault; a variable only so that tests can make a
// lost wake-up of a blocked writer hang instead of costing 10 ms.
var blockNap = blockNapDefault

// WriterStats are a writer's own counters, safe to read from any
// goroutine.
type WriterStats struct {
	Wakes   uint64 // FUTEX_WAKE syscalls on the ring's futex word
	Waits   uint64 // loans that had to wait for a blocking reader
	Demoted uint64 // blocking readers demoted to drop after the block timeout
}

// ReaderInfo describes one reader tracked by a writer.
type ReaderInfo struct {
	ID      uint64
	Block   bool // added with the block policy
	Demoted bool // was blocking, timed out, now dropped like the others
}

// TrackReaders switches the writer to tracked mode: from now on Send,
// Publish and Wake make the FUTEX_WAKE syscall only when a tracked reader's
// cursor says it sleeps. AddReader switches too; TrackReaders is for a
// ring that starts with no readers. It cannot be undone. Every reader of a
// tracked ring needs a cursor that the writer tracks: a reader without one
// is not woken and notices new messages only when its 100 ms sleep ends.
// Safe to call from any goroutine.
func (w *Writer) TrackReaders() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.readers.Load() == nil {
		w.readers.Store(&readerSet{})
	}
}

// Tracked reports whether the writer is in tracked mode.
func (w *Writer) Tracked() bool { return w.readers.Load() != nil }

// AddReader tracks the reader whose cursor block is c (typically mapped
// read-only with OpenCursor) under id, and switches the writer to tracked
// mode (see TrackReaders). With block set, Loan waits before it overwrites
// a message this reader has not finished: a blocking reader is never
// lapped and its views are never torn, for as long as it keeps up within
// the block timeout (SetBlockTimeout); one that does not is demoted to
// drop. Without block the reader is only woken when it sleeps. Adding a
// reader wakes the ring once (one FUTEX_WAKE, counted in Stats().Wakes).
//
// A reader whose cursor still says NoPosition (it has not attached it yet)
// counts as caught up. AddReader is safe to call from any goroutine while
// the writer publishes. c must stay open until RemoveReader(id) returned
// or the writer is done.
func (w *Writer) AddReader(id uint64, c *Cursor, block bool) error {
	if c == nil || c.isClosed() {
		return fmt.Errorf("%w: reader %d: no open cursor", ErrBadCursor, id)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var list []*tracked
	nblock := 0
	if old := w.readers.Load(); old != nil {
		for _, t := range old.list {
			if t.id == id {
				return fmt.Errorf("shm: reader %d is already tracked", id)
			}
		}
		list = append(list, old.list...)
		nblock = old.nblock
	}
	t := &tracked{id: id, cur: c, pos: c.position(), sleeping: c.sleeping(), futex: c.futex(), addr: c.futexAddr(), block: block}
	if block {
		nblock++
	}
	w.readers.Store(&readerSet{list: append(list, t), nblock: nblock})
	// A Send that loaded the set before this store did not look at the new
	// reader's sleeping flag. Waking the ring after the store closes that
	// gap: a reader that went to sleep before this wake-up is woken, and
	// one that goes to sleep after it sees every message such a Send
	// published (it was published before the Send loaded the set).
	w.wakeAll()
	return nil
}

// RemoveReader stops tracking reader id and reports whether it was
// tracked. It is safe to call from any goroutine while the writer
// publishes; it returns once the writer no longer touches the reader's
// cursor, so the caller may then Close it. That may take until the
// writer's current call ends (a Loan blocked on this reader gives up on it
// at once; one blocked on another reader waits at most the block timeout).
func (w *Writer) RemoveReader(id uint64) bool {
	w.mu.Lock()
	old := w.readers.Load()
	var gone *tracked
	var list []*tracked
	if old != nil {
		for _, t := range old.list {
			if t.id == id {
				gone = t
			} else {
				list = append(list, t)
			}
		}
	}
	if gone == nil {
		w.mu.Unlock()
		return false
	}
	nblock := old.nblock
	if gone.block {
		nblock--
	}
	w.readers.Store(&readerSet{list: list, nblock: nblock})
	w.mu.Unlock()
	w.quiesce(gone)
	return true
}

// Readers lists the tracked readers. Safe to call from any goroutine.
func (w *Writer) Readers() []ReaderInfo {
	s := w.readers.Load()
	if s == nil {
		return nil
	}
	out := make([]ReaderInfo, len(s.list))
	for i, t := range s.list {
		out[i] = ReaderInfo{ID: t.id, Block: t.block, Demoted: t.demoted.Load()}
	}
	return out
}

// SetBlockTimeout sets how long one Loan waits for a blocking reader
// before it demotes it to drop; d <= 0 restores DefaultBlockTimeout. Safe
// to call from any goroutine.
func (w *Writer) SetBlockTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultBlockTimeout
	}
	w.blockTimeout.Store(int64(d))
}

// Stats returns the writer's counters. Safe to call from any goroutine.
func (w *Writer) Stats() WriterStats {
	return WriterStats{Wakes: w.wakes.Load(), Waits: w.waits.Load(), Demoted: w.demoted.Load()}
}

// enter and leave bracket every stretch in which the writer touches the
// cursors of a reader set: the epoch is odd inside. RemoveReader waits for
// the epoch to move on, so it knows the writer is done with the old set.
// The writer's store of an odd epoch comes before its load of the set, and
// RemoveReader's store of the new set before its load of the epoch (all
// sequentially consistent): if RemoveReader sees an even epoch, the
// writer's next load of the set sees the new one.
//
// A fenceless writer stores the epoch plainly (it is the writer's second
// barrier per message otherwise), and RemoveReader runs a process-wide
// membarrier(2) between its store and its load instead; see Writer.Wake
// for why that is enough.
func (w *Writer) enter() { w.epochN++; w.storeEpoch() }
func (w *Writer) leave() { w.epochN++; w.storeEpoch() }

func (w *Writer) storeEpoch() {
	if w.fenceless && !raceEnabled {
		*(*uint64)(unsafe.Pointer(&w.epoch)) = w.epochN
		return
	}
	w.epoch.Store(w.epochN)
}

// quiesce waits until the writer is not inside a stretch that may use
// gone's cursor, waking it if it sleeps on that cursor.
func (w *Writer) quiesce(gone *tracked) {
	if w.fenceless && !privateBarrier() {
		panic("shm: membarrier failed after it was registered")
	}
	e := w.epoch.Load()
	if e%2 == 0 {
		return
	}
	nap := time.Microsecond
	for w.epoch.Load() == e {
		// A writer blocked on gone sleeps on its futex word; the wake-up
		// makes it notice that gone left. The word is not changed (this
		// mapping may be read-only), so a wake-up that comes just before
		// the writer sleeps is lost: repeat, and blockNap bounds the rest.
		futexWake(gone.addr)
		if nap < 50*time.Microsecond {
			runtime.Gosched()
		} else {
			time.Sleep(nap)
		}
		nap = min(2*nap, time.Millisecond)
	}
}

// anySleeping reports whether some tracked reader's cursor says it sleeps.
func (w *Writer) anySleeping() bool {
	w.enter()
	// Load the set only now, inside the bracket: a set loaded before it
	// may hold a cursor that RemoveReader already let its caller close.
	s := w.readers.Load()
	found := false
	next := u32(w.mem, OffFutex).Load() + 1 // "sleeping on the current value"
	for _, t := range s.list {
		if v := t.sleeping.Load(); v != 0 && v == next {
			found = true
			break
		}
	}
	w.leave()
	return found
}

// awaitReaders returns once no blocking reader in the current set still
// needs a message of the slot that beginning slot w.slot overwrites
// (w.slot - N), demoting those that time out; or with ctx's error
// (nothing demoted). Positions are message numbers: a reader at p has
// finished every message before p. It then records what it found, so
// that mustAwait can skip the next checks (safeMin, safeUntil).
func (w *Writer) awaitReaders(ctx context.Context) error {
	w.enter()
	defer w.leave()
	need := w.need()
	var deadline time.Time
	for {
		blocker := w.scanReaders(need)
		if blocker == nil {
			return nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(time.Duration(w.blockTimeout.Load()))
			w.waits.Add(1)
		}
		if err := w.waitFor(ctx, blocker, need, deadline); err != nil {
			return err
		}
	}
}

// scanReaders returns a blocking reader of the current set that has not
// reached message need, if there is one; if not, it records what it found,
// so that mustAwait can skip the next checks (safeMin, safeUntil). Called
// between enter and leave.
func (w *Writer) scanReaders(need uint64) *tracked {
	s, n := w.readers.Load(), w.g.slots
	safeMin, safeUntil := ^uint64(0), ^uint64(0)
	for _, t := range s.list {
		if !t.block || t.demoted.Load() {
			continue
		}
		p := t.pos.Load()
		if p > w.msgs {
			// Not attached yet (NoPosition), sought ahead, or hostile:
			// caught up, but look again within slots/8 slots. A reader
			// attaches (or a hub sets its start) at a position no older
			// than the ring's end of that moment, or one another blocking
			// reader pins, so nothing it needs is overwritten meanwhile;
			// looking at every slot costs a scan of every cursor per slot.
			safeUntil = min(safeUntil, w.slot+max(1, n/8))
			continue
		}
		if p < need {
			return t
		}
		safeMin = min(safeMin, p)
	}
	w.safeFor, w.safeMin, w.safeUntil = s, safeMin, safeUntil
	return nil
}

// need returns the first message a blocking reader must have reached
// before the writer begins slot w.slot: the first message after the slot
// it overwrites, w.slot - N (0 if it overwrites none). The writer reads
// slot headers it wrote itself: readers cannot write the ring.
func (w *Writer) need() uint64 {
	n := w.g.slots
	switch {
	case w.slot < n:
		return 0
	case n == 1:
		return w.msgs
	}
	return u64(w.mem, w.g.slotOff(w.slot-n+1)+SlotOffFirst).Load()
}

// released reports whether t no longer holds up the writer, which needs
// every blocking reader at message need or later.
func (w *Writer) released(t *tracked, need uint64) bool {
	return t.pos.Load() >= need || t.demoted.Load()
}

// stillTracked reports whether t is in the current reader set.
func (w *Writer) stillTracked(t *tracked) bool {
	for _, x := range w.readers.Load().list {
		if x == t {
			return true
		}
	}
	return false
}

// waitFor waits until the blocking reader t reaches message need, leaves
// the reader set or is demoted at deadline; or returns ctx's error.
// It spins briefly, then sets the ring's writer-waiting flag and sleeps on
// t's cursor futex in naps of at most blockNap.
func (w *Writer) waitFor(ctx context.Context, t *tracked, need uint64, deadline time.Time) error {
	spinEnd := time.Now().Add(w.blockSpin)
	if deadline.Before(spinEnd) {
		spinEnd = deadline
	}
	for i := 1; ; i++ {
		if w.released(t, need) {
			w.blockSpin = min(2*w.blockSpin, maxBlockSpin)
			return nil
		}
		if i%spinYield == 0 {
			if ctx != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(spinEnd) {
				break
			}
			runtime.Gosched()
		}
	}
	w.blockSpin = max(w.blockSpin/2, minBlockSpin)
	// Readers wake the writer when a position store of theirs reaches
	// what it needs, once, not at every store: with ten readers of one
	// ring in a process, most of them ahead of the blocker, a wake-up per
	// store cost more than one syscall per message. (A target a quarter
	// ring further, to wake the writer less often, left it asleep until
	// its nap when the reader paused right after freeing the slot.)
	u64(w.mem, OffWriterWaitFor).Store(need)
	waiting := u32(w.mem, OffWriterWaiting)
	waiting.Store(1)
	defer waiting.Store(0)
	// Readers in processes registered for membarrier store positions with
	// plain stores (Reader.syncPos): this makes any such store made before
	// now visible to the loads below, and a reader's later load of the
	// flag sees it set. If it fails, a missed store costs one blockNap.
	globalBarrier()
	if ctx != nil && ctx.Done() != nil {
		w.waitAddr.Store(t.addr)
		stop := context.AfterFunc(ctx, func() {
			if a := w.waitAddr.Load(); a != nil {
				futexWake(a) // EFAULT at worst, if the cursor is gone
			}
		})
		defer func() {
			stop()
			w.waitAddr.Store(nil)
		}()
	}
	for {
		// Dekker with the reader's syncPos: the flag is stored before the
		// futex word and the position are loaded; the reader stores its
		// position, then loads the flag, then changes the futex word. So
		// either the position below is new, or the word changes after
		// the load of f and FUTEX_WAIT returns at once.
		f := t.futex.Load()
		if w.released(t, need) || !w.stillTracked(t) {
			return nil
		}
		if ctx != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.demoted.Store(true)
			w.demoted.Add(1)
			return nil
		}
		futexWait(t.addr, f, min(left, blockNap))
	}
}
