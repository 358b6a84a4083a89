package shm

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Msg is one message read from a ring.
type Msg struct {
	// Data is a read-only view of the payload, valid until Release or the
	// next Next/TryNext/Recv. Never write through it.
	Data []byte
	// Seq is the message's number: the writer numbers its messages 0, 1,
	// 2, ...
	Seq uint64
	// Missed is how many messages were lost (overwritten before they were
	// read, torn in Recv, or corrupt) between the previous message this
	// reader returned and this one.
	Missed uint64
	// Bare reports that the writer sent the message with SendBare: Data
	// is the message's data alone, not a frame.
	Bare bool
}

// ReaderStats are a reader's own counters since it was created.
type ReaderStats struct {
	Read    uint64 // messages returned
	Missed  uint64 // messages lost: lapped, torn in Recv, or corrupt
	Torn    uint64 // views that Release reported overwritten
	Corrupt uint64 // places where a record or a slot failed validation
}

// Reader reads a ring. Each Reader has its own position and is used by one
// goroutine at a time; create one per subscriber. A new Reader starts at
// the current end of the ring: it sees only messages published after it
// was created.
type Reader struct {
	mem   []byte
	g     geometry
	futex *uint32

	// Where the reader is: slot sequence slot (whose slot starts at
	// slotBase, and whose record words carry hi), the next record at off
	// from the slot's first record. at is that record's number, unknown
	// while resync is set (after the reader landed in a slot: its first
	// record's number comes from the slot header). msg is the number of
	// the next message to return: a record below it is passed over (a
	// Seek ahead), one above it means msg..at-1 were missed. free: the
	// next record sets msg (Rewind), with nothing missed.
	slot     uint64
	slotBase int
	hi       uint64
	off      uint64
	at       uint64
	msg      uint64
	resync   bool
	free     bool
	pending  uint64 // missed, not yet reported in a Msg
	stats    ReaderStats
	held     bool          // a view into slot is out
	bare     bool          // the last message taken was bare (Bare)
	spin     Spin          // how long Next spins before sleeping (adaptive)
	noSpin   bool          // SetSpin(false): sleep at once
	fenceMu  atomic.Uint32 // target of the read fence; never shared

	cur *Cursor // attached cursor block, or nil
	// fenceless: syncPos stores the position with a plain store (x86, this
	// process registered for membarrier); a waiting writer runs
	// membarrier before it loads positions (see syncPos).
	fenceless bool
	lastPos   uint64 // the position last stored into cur
}

// maxSleep bounds one FUTEX_WAIT of a reader in Next; a variable only so
// that tests can make a lost wake-up hang instead of costing 100 ms.
var maxSleep = 100 * time.Millisecond

// pollAttempts bounds the slot checks of one poll.
const pollAttempts = 4

// needFence reports whether plain loads may be reordered after a later
// atomic load (everything but x86's TSO).
const needFence = !tso

// NewReader validates the ring header in mem and returns a reader
// positioned at the ring's current end. mem is only ever read.
func NewReader(mem []byte) (*Reader, error) {
	g, err := readGeometry(mem)
	if err != nil {
		return nil, err
	}
	r := &Reader{
		mem:       mem,
		g:         g,
		futex:     addr32(mem, OffFutex),
		fenceless: tso && asymmetricFences(),
	}
	r.Seek(u64(mem, OffMessages).Load())
	return r, nil
}

// enter moves the reader to the start of slot sequence slot.
func (r *Reader) enter(slot uint64) {
	r.slot, r.slotBase, r.hi, r.off = slot, r.g.slotOff(slot), recordHi(slot), 0
}

// Pos returns the number of the next message this reader will return
// (or a later one, if that one is lost).
func (r *Reader) Pos() uint64 { return r.msg }

// AttachCursor makes the reader publish its position and its sleeps in c,
// a read-write mapping of its cursor block, from now on: the position
// after every message it returns or releases (one store when it changed),
// and the sleeping flag around every FUTEX_WAIT. A writer that
// tracks its readers (Writer.AddReader) uses them to skip wake-ups nobody
// needs and to block for this reader. AttachCursor(nil) detaches the
// current cursor, leaving NoPosition in it. The cursor must stay open while
// it is attached.
func (r *Reader) AttachCursor(c *Cursor) error {
	if c != nil && (!c.writable || c.isClosed()) {
		return fmt.Errorf("%w: a reader needs an open, read-write mapping of its cursor", ErrBadCursor)
	}
	if old := r.cur; old != nil && !old.isClosed() {
		old.sleeping().Store(0)
		old.position().Store(NoPosition)
	}
	r.cur = c
	if c != nil {
		r.lastPos = r.curPos()
		c.position().Store(r.lastPos)
		r.wakeWriter(c)
	}
	return nil
}

// Cursor returns the attached cursor, or nil.
func (r *Reader) Cursor() *Cursor { return r.cur }

// Seek moves the reader to message number seq, releasing any held view:
// the next message it returns is seq, or a later one with the gap counted
// as missed if seq was overwritten already. A seq beyond the end waits for
// the writer to get there. The hub uses it to start a reader where its
// attachment begins.
//
// The reader goes to the newest slot whose first message is seq or older
// and passes over the messages before seq as it reads; its cursor position
// says seq from now on. A slot with no record yet does not count (its
// header's number is only trusted once a record follows it), so a Seek to
// the end, when the writer has begun its next slot ahead, goes to the
// slot before and passes over that slot's records (at most PackBytes of
// them) on its first read.
func (r *Reader) Seek(seq uint64) {
	r.Release()
	r.msg, r.free = seq, false
	slot, _ := r.slotFor(seq)
	r.enter(slot)
	r.resync = true
	r.syncPosNow()
}

// slotFor returns the newest slot in the ring whose first message is seq
// or older (found), or, if none is, the oldest one left.
func (r *Reader) slotFor(seq uint64) (slot uint64, found bool) {
	started := u64(r.mem, OffSlotSeq).Load()
	if started == 0 {
		return 0, false
	}
	cand := started - 1
	for i := uint64(0); i < r.g.slots && i < started; i++ {
		s := started - 1 - i
		off := r.g.slotOff(s)
		if v := u64(r.mem, off+SlotOffSeq).Load(); v != 2*s+1 && v != 2*s+2 {
			break // overwritten, or not begun: nothing older is left either
		}
		cand = s
		// The first message's number is of this lap if the slot's first
		// record is (it was stored before that record's word).
		word := u64(r.mem, off+SlotOffRecords).Load()
		if word&recHiMask == recordHi(s) && u64(r.mem, off+SlotOffFirst).Load() <= seq {
			return cand, true
		}
	}
	return cand, false
}

// curPos is the position to publish: the number of the held view's
// message, or of the next message.
func (r *Reader) curPos() uint64 {
	if r.held {
		return r.msg - 1
	}
	return r.msg
}

// syncPos stores the reader's position into its cursor if it changed. The
// store comes before the load of the writer-waiting flag, and the writer
// stores the flag before it loads the position (both sequentially
// consistent), so either the writer sees the new position or the reader
// sees the flag and wakes it: a blocked writer never misses the advance it
// asked for.
//
// Every move is stored: the writer reads the position only when it may
// have to wait (and the sleeping flag, which it loads after every message,
// has a cache line of its own), so the store stays on a line the reader
// owns. On x86 with membarrier it is a plain store: an atomic one is an
// XCHG, which waits until every earlier store of this goroutine is out,
// such as the slot of the reply it just published (a ping-pong's other
// ring), and cost a 16 B ping-pong 40 ns a round trip. The Dekker partner,
// a writer about to wait, then runs membarrier(GLOBAL_EXPEDITED) between
// its store of the flag and its loads of positions, the barrier this
// store leaves out. (Storing only every slots/8 messages hid
// a release from a writer that blocked just after it: with the reader
// paused, the writer waited for its next call, or its block timeout,
// although the slot it needed was free.) The writer is woken only by the
// store that reaches the position it asked for (OffWriterWaitFor), once
// per wait, not by every store: with ten readers of one ring in a process,
// a wake-up per store cost more than one syscall per message.
func (r *Reader) syncPos() {
	c := r.cur
	if c == nil {
		return
	}
	p := r.curPos()
	if p == r.lastPos {
		return
	}
	if p < r.lastPos {
		r.storePos(c, p) // moved back
		return
	}
	last := r.lastPos
	r.lastPos = p
	if r.fenceless {
		store64(c.mem, CurOffPosition, p)
	} else {
		c.position().Store(p)
	}
	if u32(r.mem, OffWriterWaiting).Load() != 0 {
		if t := u64(r.mem, OffWriterWaitFor).Load(); last < t && p >= t {
			r.wake(c)
		}
	}
}

// syncPosNow publishes the reader's position at once.
func (r *Reader) syncPosNow() {
	if c := r.cur; c != nil && r.curPos() != r.lastPos {
		r.storePos(c, r.curPos())
	}
}

func (r *Reader) storePos(c *Cursor, p uint64) {
	r.lastPos = p
	c.position().Store(p)
	r.wakeWriter(c)
}

// wakeWriter wakes a writer blocked on this reader's cursor, if the ring
// says a writer waits.
func (r *Reader) wakeWriter(c *Cursor) {
	if u32(r.mem, OffWriterWaiting).Load() != 0 {
		r.wake(c)
	}
}

// wake bumps the cursor's futex word and wakes the writer sleeping on it.
func (r *Reader) wake(c *Cursor) {
	c.futex().Add(1)
	futexWake(c.futexAddr())
}

// Rewind moves the reader back to the oldest message the ring may still
// hold (the first of the oldest slot), releasing any held view. A
// subscriber that joins late uses it to see recent history.
func (r *Reader) Rewind() {
	r.Release()
	r.resync, r.free = true, true
	// Pos says the oldest slot's first message; the first record read
	// says it exactly (free: nothing before it counts as missed). A slot
	// begun again meanwhile is looked up again, a few times.
	for range pollAttempts {
		started := u64(r.mem, OffSlotSeq).Load()
		t := uint64(0)
		if started > r.g.slots {
			t = started - r.g.slots
		}
		r.enter(t)
		r.msg = u64(r.mem, OffMessages).Load()
		if t >= started {
			break // nothing begun yet: the next message is the first
		}
		first := u64(r.mem, r.slotBase+SlotOffFirst).Load()
		if v := u64(r.mem, r.slotBase+SlotOffSeq).Load(); v == 2*t+1 || v == 2*t+2 {
			r.msg = first
			break
		}
	}
	r.syncPosNow()
}

// Stats returns the reader's counters.
func (r *Reader) Stats() ReaderStats { return r.stats }

// Unreported returns how many messages the reader has skipped (lapped,
// overtaken, corrupt) since the last message it returned: the Missed of
// the next Msg. A caller that stops reading counts them itself.
func (r *Reader) Unreported() uint64 { return r.pending }

// SlotSize returns S, the largest payload a message may have.
func (r *Reader) SlotSize() int { return int(r.g.size) }

// miss counts n messages as lost.
func (r *Reader) miss(n uint64) {
	r.pending += n
	r.stats.Missed += n
}

func (r *Reader) fence() {
	if needFence {
		r.fenceMu.Add(1)
	}
}

// Release ends the view returned by the last Next or TryNext and reports
// whether the slot still held that message: false means the writer started
// overwriting it while the view was held, so the bytes read may be torn and
// must be discarded. Release without a held view returns true.
func (r *Reader) Release() bool {
	ok := r.intact()
	r.syncPos()
	if ok {
		return true
	}
	r.stats.Torn++
	return false
}

// lapMargin is how many slots past the oldest one a lapped reader lands.
func lapMargin(slots uint64) uint64 { return slots / 4 }

// intact ends the held view and reports whether its slot was never begun
// again: records are only appended to a slot, so while the slot sequence
// word says this lap (begun or full), every record the reader took from
// it is as it was.
func (r *Reader) intact() bool {
	if !r.held {
		return true
	}
	r.held = false
	return r.thisLap()
}

// TryNext returns the next message without blocking, releasing any view
// still held. It returns ErrEmpty if none is available, ErrCorrupt if it
// skipped a corrupt slot and found no message, ErrClosed if the writer
// closed the ring and every message was read.
func (r *Reader) TryNext() (Msg, error) {
	// One function, not a wrapper around another that returns the Msg:
	// each copy of a Msg on the way out cost a 16 B round trip a few ns.
	if !r.intact() {
		r.stats.Torn++
	}
	m, corrupt, ok := r.poll() // publishes the position if ok
	switch {
	case ok:
		return m, nil
	case corrupt:
		r.syncPosNow() // stuck on corruption: say exactly where
		return Msg{}, ErrCorrupt
	case u32(r.mem, OffClosed).Load() == 0:
		r.syncPos()
		return Msg{}, ErrEmpty
	}
	// Commit stores the record word before a Close can store the
	// flag, so one more poll sees every message.
	if m, corrupt, ok = r.poll(); ok {
		return m, nil
	}
	r.syncPosNow() // closed, or stuck on corruption: say exactly where
	if corrupt {
		return Msg{}, ErrCorrupt
	}
	return Msg{}, ErrClosed
}

// poll does a bounded amount of work: at most pollAttempts steps that
// move the reader to another slot or find nothing, besides the records it
// passes over (Seek) on the way. When it returns a message it has
// published the reader's position (syncPos).
//
// It loads the record word at the reader's place first: a record of this
// slot's lap is read without anything else. Only when the word is not
// one does it load the slot sequence word: the slot begun (nothing new
// yet), full (its end word must be there: corrupt otherwise), not begun
// (the writer is behind), or begun again by a later lap (overtaken). A
// reader that keeps up with a busy writer thus touches only the records'
// cache lines, several messages to a line for small ones.
func (r *Reader) poll() (m Msg, corrupt, ok bool) {
	// A move to the next slot while passing over messages before the one
	// sought is not an attempt (a Seek ahead may be many slots ahead), up
	// to a ring's worth of them.
	moves := 0
	step := func(tries *int) {
		if moves++; moves > int(r.g.slots) || !r.passingOver() {
			*tries++
		}
	}
	for tries := 0; tries < pollAttempts; {
		if r.slotDone() && r.thisLap() {
			r.enter(r.slot + 1)
			r.syncPos()
			step(&tries)
			continue
		}
		base := r.slotBase + SlotOffRecords + int(r.off)
		word := uint64(0) // a done slot begun again: ask the slot below
		if !r.slotDone() {
			word = u64(r.mem, base).Load()
		}
		hi, l := word&recHiMask, word&recLenMask
		if hi == r.hi {
			next := nextRecord(r.off, word, r.g.pack)
			if !r.thisLap() {
				r.leave() // begun again since: this record is going
				tries++
				continue
			}
			if next+RecordHeaderSize > r.g.area || l > r.g.size {
				// A record of this lap that would run past the slot, or
				// is longer than a message may be.
				corrupt = true
				r.corruptSlot()
				tries++
				continue
			}
			if r.resync {
				// The slot's first record since the reader landed: the
				// header's number was stored before this record's word,
				// and it is this lap's if the slot still is after it.
				first := u64(r.mem, r.slotBase+SlotOffFirst).Load()
				if !r.thisLap() {
					r.leave()
					tries++
					continue
				}
				r.at, r.resync = first, false
				if r.free {
					r.msg, r.free = r.at, false
				}
			}
			k := r.at
			r.at++
			r.off = next
			if k < r.msg {
				continue // before the message sought: passed over
			}
			if k > r.msg {
				r.miss(k - r.msg)
			}
			r.msg = k + 1
			missed := r.pending
			r.pending = 0
			r.held = true
			r.bare = word&recBare != 0
			r.stats.Read++
			// The position is published here, not by the caller after this
			// returns: a call between would make the compiler keep the Msg on
			// the stack across it, and the copies cost a 16 B round trip a
			// few ns.
			r.syncPos()
			p := base + RecordHeaderSize
			return Msg{Data: r.mem[p : p+int(l) : p+int(l)], Seq: k, Missed: missed, Bare: r.bare}, corrupt, true
		}
		if word == r.hi|recEnd && r.thisLap() {
			r.enter(r.slot + 1)
			r.syncPos()
			step(&tries)
			continue
		}
		// No record for this reader at its place: ask the slot.
		v := u64(r.mem, r.slotBase+SlotOffSeq).Load()
		begun := 2*r.slot + 1
		switch {
		case v == begun:
			return Msg{}, corrupt, false // the writer is here: nothing new
		case v == begun+1:
			// Full: the end word was stored before "full". Look again;
			// a word that still is neither record nor end is corrupt.
			if u64(r.mem, base).Load() == word {
				corrupt = true
				r.corruptSlot()
			}
		case v < begun:
			return Msg{}, corrupt, false // not begun: the writer is behind
		case u64(r.mem, OffSlotSeq).Load() <= r.slot+1:
			// Begun again, says the slot, but the header says the writer
			// has not got past this slot: a hostile ring (or the header
			// store not visible yet). Wait, as ready says.
			return Msg{}, corrupt, false
		default:
			r.leave()
		}
		tries++
	}
	return Msg{}, corrupt, false
}

// passingOver reports whether the reader is after a later message than
// the records at its place (a Seek ahead), as far as it knows.
func (r *Reader) passingOver() bool { return !r.free && (r.resync || r.at < r.msg) }

// slotDone reports whether the reader took its slot's last record: one
// marked so (class 3, which nextRecord turns into an offset past the
// packing limit) or one after which not even an empty record fits within
// it. The writer ends such a slot at that record, with no end word.
func (r *Reader) slotDone() bool { return r.g.doneAt(r.off) }

// thisLap reports whether the reader's slot still holds the reader's lap
// (begun or full): a record word of this lap read before it is not going
// away, nor is anything read after it that was written before.
func (r *Reader) thisLap() bool {
	r.fence()
	return u64(r.mem, r.slotBase+SlotOffSeq).Load()-(2*r.slot+1) <= 1
}

// corruptSlot counts a corrupt place and moves on to the next slot; the
// messages lost are counted when the reader learns the next one's number.
func (r *Reader) corruptSlot() {
	r.stats.Corrupt++
	r.enter(r.slot + 1)
	r.resync = true
	r.syncPos()
}

// leave moves a reader whose slot the writer began again on: to the next
// slot if that still holds its lap (a reader that had read its slot to
// the end loses nothing: it learns the next slot's first message number
// there); else to the slot that holds the message it wants, if the ring
// still has it (a reader that sought ahead, or whose slots were
// overwritten with messages it passes over, as a blocking writer may);
// else lapMargin slots past the oldest slot left (land).
func (r *Reader) leave() {
	next := r.slot + 1
	if u64(r.mem, r.g.slotOff(next)+SlotOffSeq).Load()-(2*next+1) <= 1 {
		r.enter(next)
		r.resync = true
		r.syncPos()
		return
	}
	if !r.free {
		if s, found := r.slotFor(r.msg); found && s > r.slot {
			r.enter(s)
			r.resync = true
			r.syncPos()
			return
		}
	}
	r.land()
}

// land moves a lapped reader lapMargin slots past the oldest slot left,
// not onto it: the oldest is the one the writer begins next, and a slow
// reader landing there would mostly see torn messages.
func (r *Reader) land() {
	started := u64(r.mem, OffSlotSeq).Load()
	t := r.slot + 1
	if n := r.g.slots; started > n {
		t = max(t, min(started-n+1+lapMargin(n), started-1))
	}
	r.enter(t)
	r.resync = true
	r.syncPos()
}

// TakeNext is the common case of TryNext, for a caller that polls in a
// loop: if the reader holds no view, has no losses to report and the
// record at its place is the next message, it takes that message as a
// view (its number is Pos()-1, nothing was missed before it) and returns
// its payload. Otherwise it changes nothing and returns false: TryNext
// then does the rest (release the view, report losses, the next slot,
// lapping, corruption, ErrEmpty, ErrClosed). It returns one slice where
// TryNext returns a Msg and an error, which on a 16 B round trip is worth
// a few ns per hop.
func (r *Reader) TakeNext() ([]byte, bool) {
	if r.held || r.pending != 0 || r.resync || r.at != r.msg {
		return nil, false
	}
	slot, slotBase, off := r.slot, r.slotBase, r.off
	if r.slotDone() {
		// The last record of its slot was taken: the next one is at
		// the start of the next slot.
		if !r.thisLap() {
			return nil, false
		}
		slot++
		slotBase, off = r.g.slotOff(slot), 0
	}
	data, ok := r.takeAt(slot, slotBase, off)
	if ok {
		r.syncPos()
	}
	return data, ok
}

// takeAt takes the record at off in slot sequence slot (whose slot starts
// at slotBase) as the next message, if it is one of that slot's lap that
// fits the slot and the slot was not begun again: it moves the reader
// past it and holds its view. Otherwise it reports false and changes
// nothing. TakeNext's and Poll's common case; the caller checked that the
// record is the message the reader wants (nothing missed, no resync).
func (r *Reader) takeAt(slot uint64, slotBase int, off uint64) ([]byte, bool) {
	base := slotBase + SlotOffRecords + int(off)
	word := u64(r.mem, base).Load()
	l := word & recLenMask
	next := nextRecord(off, word, r.g.pack)
	hi := recordHi(slot)
	if word&recHiMask != hi || next+RecordHeaderSize > r.g.area || l > r.g.size {
		return nil, false
	}
	r.fence()
	if u64(r.mem, slotBase+SlotOffSeq).Load()-(2*slot+1) > 1 {
		return nil, false // begun again: TryNext decides
	}
	r.slot, r.slotBase, r.hi = slot, slotBase, hi
	r.off = next
	r.at++
	r.msg++
	r.held = true
	r.bare = word&recBare != 0
	r.stats.Read++
	p := base + RecordHeaderSize
	return r.mem[p : p+int(l) : p+int(l)], true
}

// Bare reports whether the last message the reader took (TakeNext,
// TryNext, Next, Recv, or the one Poll passes fn) was sent with
// Writer.SendBare: its payload is the message's data alone.
func (r *Reader) Bare() bool { return r.bare }

// Poll passes fn the messages available now, up to max, without waiting,
// and returns how many it passed; it releases any view still held first.
// data is the payload, valid until fn returns: fn may call Release to
// learn whether it was intact, and Poll releases it otherwise, counting a
// torn one in Stats().Torn. missed is how many messages were lost before
// this one (the Msg's Missed). fn returns false to stop after this
// message. Poll's error is what TryNext would have returned when it found
// no message (ErrEmpty, ErrCorrupt, ErrClosed), or nil when it passed max
// messages or fn stopped it.
//
// It does per message only what a message needs: the slot's sequence,
// its length, the call, the check that it was not overwritten, a look at
// the writer's waiting flag. The reader's position is published when
// Poll returns, and after a message only while a writer waits (or when fn
// calls Release, or a message needed the slow path): a blocked writer
// sees every message's release, as with TryNext, and a writer that does
// not wait does not cost the batch a store per message. fn holds the
// slot it is given, as a view does: a blocking writer that needs that
// slot waits for fn, at most its block timeout.
func (r *Reader) Poll(max int, fn func(data []byte, seq, missed uint64) bool) (n int, err error) {
	if !r.intact() {
		r.stats.Torn++
	}
	for n < max {
		var data []byte
		var seq, missed uint64
		fast := false
		if r.pending == 0 && !r.resync && r.at == r.msg && r.slotDone() && r.thisLap() {
			r.enter(r.slot + 1) // as in TakeNext
		}
		if r.pending == 0 && !r.resync && r.at == r.msg && !r.slotDone() {
			seq = r.msg
			data, fast = r.takeAt(r.slot, r.slotBase, r.off)
		}
		if !fast {
			m, corrupt, ok := r.poll()
			if !ok && !corrupt && u32(r.mem, OffClosed).Load() != 0 {
				// Commit stores the record word before a Close can
				// store the flag, so one more poll sees every message.
				m, corrupt, ok = r.poll()
				if !ok && !corrupt {
					r.syncPosNow()
					err = ErrClosed
					break
				}
			}
			if !ok {
				err = ErrEmpty
				if corrupt {
					r.syncPosNow() // stuck on corruption: say exactly where
					err = ErrCorrupt
				}
				break
			}
			data, seq, missed = m.Data, m.Seq, m.Missed
		}
		n++
		more := fn(data, seq, missed)
		if r.held && !r.intact() {
			r.stats.Torn++
		}
		if u32(r.mem, OffWriterWaiting).Load() != 0 {
			// A writer waits (for this reader, maybe): it sees each
			// message's release, as after TryNext, not the batch's end,
			// which could come after its block timeout.
			r.syncPos()
		}
		if !more {
			break
		}
	}
	r.syncPos()
	return n, err
}

// ready reports whether the reader has something to do (a record or an
// end word at its place, its slot full or begun again, or the ring
// closed), with the same record-first order of loads as poll.
func (r *Reader) ready() bool {
	if u32(r.mem, OffClosed).Load() != 0 {
		return true
	}
	// As poll: a record or the end word at the reader's place, or a slot
	// it has read to the end, if the slot still holds its lap; else what
	// the slot sequence word says.
	if !r.slotDone() {
		word := u64(r.mem, r.slotBase+SlotOffRecords+int(r.off)).Load()
		if (word&recHiMask == r.hi || word == r.hi|recEnd) && r.thisLap() {
			return true
		}
	} else if r.thisLap() {
		return true
	}
	// Begun means the writer is here; a writer that leaves a loan
	// unpublished while it publishes on (hostile) is waited on like an
	// idle one: its readers sleep, they do not spin. Begun again counts
	// only if the header agrees (as in poll).
	switch v := u64(r.mem, r.slotBase+SlotOffSeq).Load(); {
	case v == 2*r.slot+2:
		return true
	case v > 2*r.slot+2:
		return u64(r.mem, OffSlotSeq).Load() > r.slot+1
	}
	return false
}

// Next returns the next message, waiting for one if necessary: a short
// adaptive spin, then FUTEX_WAIT until the writer wakes the ring or ctx
// ends. It releases any view still held. Errors: ctx's error, ErrClosed,
// ErrCorrupt (a corrupt slot was skipped; calling Next again continues).
//
// With a cursor attached, the reader sets the cursor's sleeping flag before
// it sleeps and clears it when Next returns, so a writer that tracks its
// readers knows whom to wake. A reader without a cursor on such a ring is
// woken by nobody: it re-polls every 100 ms.
func (r *Reader) Next(ctx context.Context) (Msg, error) {
	for {
		m, err := r.TryNext()
		if err != ErrEmpty {
			return m, err
		}
		if err := ctx.Err(); err != nil {
			// Also a backstop: a hostile ring that Wait finds ready and
			// TryNext empty, again and again, does not keep Next past ctx.
			return Msg{}, err
		}
		if err := r.Wait(ctx); err != nil {
			return Msg{}, err
		}
	}
}

// Wait waits until the reader has something to return (a message past its
// position, or the ring closed) or ctx ends, without reading anything: a
// short adaptive spin, then FUTEX_WAIT (see Next). Next is TryNext and
// Wait in a loop; a caller that reads with TryNext elsewhere (or later)
// uses Wait alone to sleep. It does not release a held view.
func (r *Reader) Wait(ctx context.Context) error {
	spun, slept, flagged := false, false, false
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
		if flagged {
			r.clearSleep()
		}
	}()
	for {
		if r.ready() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !spun {
			spun = true
			if !r.noSpin {
				if spinFor(r.spin.Budget(), r.ready) {
					r.spin.Found()
					return nil
				}
				r.spin.Slept()
			}
		}
		f, d := r.sleepOn()
		flagged = flagged || r.cur != nil
		if r.ready() {
			continue
		}
		if !slept {
			slept = true
			if ctx.Done() != nil {
				// A cancelled ctx wakes every sleeper on this ring (the
				// others see a spurious wake-up and sleep again).
				stop = context.AfterFunc(ctx, func() { futexWake(r.futex) })
			}
		}
		if dl, ok := ctx.Deadline(); ok {
			if until := time.Until(dl); until < d {
				d = until
			}
		}
		if d > 0 {
			futexWait(r.futex, f, d)
		}
	}
}

// sleepOn loads the futex word the reader is about to sleep on and, with a
// cursor, stores "sleeping on that value" (the value + 1) in it. It returns
// the value and how long the reader may sleep before it polls again.
//
// Dekker: the reader stores "sleeping", then loads the record word and
// the closed flag; a tracked writer stores the record word (or the
// flag), then loads "sleeping" and the futex word. With a full barrier on
// each side between store and load, at least one of the two sees the
// other's store: the reader finds the message, or the writer sees it
// sleeping. The reader's barrier is its atomic store; a fenceless writer
// has none of its own, so the reader runs membarrier(2) for both (see
// Writer.Wake). If that fails, the reader may sleep through a wake-up and
// naps at most fencelessNap.
//
// The writer wakes only readers sleeping on the current futex value, and
// increments it when it does: readers it already woke, who have not run
// yet, are not woken again for every later message (a burst would pay a
// FUTEX_WAKE per message). A wake-up between the load of the futex word
// and FUTEX_WAIT changes the word, and the wait returns at once. (Once in
// 2^32 wake-ups the value + 1 wraps to 0 and the reader sleeps until its
// maxSleep re-poll.)
func (r *Reader) sleepOn() (uint32, time.Duration) {
	f, fenceless := r.flagSleep()
	if fenceless && !globalBarrier() {
		return f, fencelessNap
	}
	return f, maxSleep
}

// flagSleep loads the ring's futex word f and, with a cursor, stores
// "sleeping on f" (f + 1) in it. fenceless reports that the flag was
// stored on a fenceless writer's ring: the caller owes a membarrier
// before it checks the ring again (see sleepOn).
func (r *Reader) flagSleep() (f uint32, fenceless bool) {
	f = u32(r.mem, OffFutex).Load()
	if r.cur == nil {
		return f, false
	}
	r.cur.sleeping().Store(f + 1)
	return f, u32(r.mem, OffFencelessWriter).Load() != 0
}

// clearSleep clears the cursor's sleeping flag that flagSleep set.
func (r *Reader) clearSleep() {
	if r.cur != nil {
		r.cur.sleeping().Store(0)
	}
}

// fencelessNap bounds a reader's sleep on a fenceless writer's ring when
// membarrier(2) fails in the reader's process (a seccomp filter, say).
const fencelessNap = time.Millisecond

// SetSpin turns the spin before Next and Wait sleep on or off (it is on
// for a new Reader). A process with more readers waiting than CPUs is
// better off with most of them asleep: spinning readers take the CPU
// from the writer and from each other.
func (r *Reader) SetSpin(on bool) { r.noSpin = !on }

// Recv waits like Next and returns a copy of the next intact message,
// appended to dst[:0]. A message overwritten while it was being copied is
// discarded and counted in the Missed of the message returned.
func (r *Reader) Recv(ctx context.Context, dst []byte) ([]byte, Msg, error) {
	var lost uint64
	for {
		if err := ctx.Err(); err != nil && lost > 0 {
			// Torn copies again and again (a writer lapping this reader,
			// or a hostile one): ctx still ends the wait.
			r.pending += lost
			return dst[:0], Msg{}, err
		}
		m, err := r.Next(ctx)
		if err != nil {
			r.pending += lost
			return dst[:0], Msg{}, err
		}
		dst = append(dst[:0], m.Data...)
		ok := r.intact()
		r.syncPos()
		if ok {
			m.Data = dst
			m.Missed += lost
			return dst, m, nil
		}
		r.stats.Missed++
		r.stats.Read--
		lost += m.Missed + 1
	}
}
