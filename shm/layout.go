package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Header field offsets, in bytes from the start of the region. See the
// package documentation for the full layout.
const (
	OffMagic     = 0   // uint64, Magic
	OffVersion   = 8   // uint32, Version
	OffSlots     = 12  // uint32, slot count N (a power of two)
	OffSlotSize  = 16  // uint32, slot payload size S
	OffStride    = 20  // uint32, bytes from one slot to the next
	OffDataStart = 24  // uint32, offset of slot 0 (= HeaderSize)
	OffSlotSeq   = 64  // uint64, slots begun: the writer's slot is OffSlotSeq-1
	OffMessages  = 128 // uint64, messages published: the next message's number
	OffBytes     = 136 // uint64, payload bytes published
	OffFutex     = 192 // uint32, incremented by the writer after publishing
	OffClosed    = 196 // uint32, non-zero once the writer closed the ring
	// OffWriterWaiting is a uint32, non-zero while the writer waits for a
	// blocking reader to advance (see Writer.AddReader). Readers only read
	// it: a reader with a cursor that sees it set after storing a new
	// position wakes the writer through its cursor's futex word.
	OffWriterWaiting = 200
	// OffFencelessWriter is a uint32, non-zero while the ring's writer
	// publishes without a full barrier per message (see Writer.Wake):
	// a reader must then run membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)
	// after it stores its sleeping flag and before it loads the write
	// sequence, or it may sleep through a message.
	OffFencelessWriter = 204
	// OffWriterWaitFor is a uint64, meaningful while OffWriterWaiting is
	// set: the position a reader must reach for the waiting writer to go
	// on. A reader wakes the writer when a position store of its reaches
	// it, once, not at every store while the writer waits.
	OffWriterWaitFor = 208
)

// Slot field offsets, in bytes from the start of a slot.
const (
	SlotOffSeq     = 0  // uint64, slot sequence word: 2s+1 slot s begun, 2s+2 slot s full
	SlotOffFirst   = 8  // uint64, number of the slot's first message
	SlotOffRecords = 16 // the records, one after another
)

// Records: a slot holds one or more messages, each a record of an 8-byte
// record word and the payload, padded to 8 bytes. The record word is
//
//	bits  0–30  payload length
//	bit     31  bare: the payload is the message's data alone (no frame),
//	            on the subject the ring's users agree on (Writer.SendBare)
//	bits 32–59  tag: the slot sequence s modulo 2^28
//	bits 60–61  where the next record starts: 0 right after this one
//	            (8-byte aligned), 1 or 2 at the next multiple of 32 or
//	            64 bytes from the slot's start; 3: nowhere, this is the
//	            slot's last record
//	bit     62  end: no more records in this slot (length zero)
//	bit     63  valid: zero means "nothing here yet"
//
// The writer writes the payload, stores zero into the word where the next
// record starts, then stores the record word. A reader takes the record
// at its offset only if the word is valid and carries its slot's tag; the
// tag tells a record of this lap from a stale one of an earlier lap.
//
// The writer aligns the next record to 32 bytes after a record of at most
// 32, and to 64 after one of at most 64 (a stream's messages are usually
// of one size): small records never straddle two cache lines, so a reader
// that keeps up with the writer takes one line per record, or per two.
// A record after which another of its size would not fit (but an empty
// one would) is marked the slot's last (class 3); one after which not
// even an empty record fits (a large message) is the last by arithmetic
// alone. Either way readers go on to the next slot at once, and the
// writer stores neither an end word nor "full", which would each take a
// line from a reader once more.
const (
	// RecordHeaderSize is the size of the record word before a payload.
	RecordHeaderSize = 8
	// PackBytes is how far into a slot the writer packs records: a message
	// that starts a slot may fill all of it (up to S bytes), one after
	// others only while the slot's records stay within PackBytes. It keeps
	// the memory a stream of small messages touches to PackBytes per slot.
	PackBytes = 4096

	recLenMask    = uint64(1)<<31 - 1
	recBare       = uint64(1) << 31
	recValid      = uint64(1) << 63
	recEnd        = uint64(1) << 62
	recAlignShift = 60
	recTagBits    = 28
	recTagMask    = uint64(1)<<recTagBits - 1
	// recHiMask selects what identifies a record: valid, end and the tag.
	recHiMask = recValid | recEnd | recTagMask<<32
)

// recordHi returns the valid bit and the tag of the record word of a
// message in slot s.
func recordHi(s uint64) uint64 { return recValid | (s&recTagMask)<<32 }

// recordSpan returns the bytes a record of an n-byte payload takes.
func recordSpan(n uint64) uint64 { return RecordHeaderSize + (n+7)&^7 }

// nextRecord returns where the record after the one at off starts, given
// the record word: right after it, or aligned as the word's bits 60–61
// say; after the slot's last record (class 3), an offset where no record
// fits within pack bytes (slotDone). It may exceed the slot: callers check
// it against the area.
func nextRecord(off, word, pack uint64) uint64 {
	end := off + recordSpan(word&recLenMask)
	switch c := word >> recAlignShift & 3; c {
	case 0:
		return end
	case classLast:
		if pack >= RecordHeaderSize && pack-RecordHeaderSize > end {
			return pack - RecordHeaderSize
		}
		return end
	default:
		a := uint64(16) << c
		return (SlotOffRecords+end+a-1)&^(a-1) - SlotOffRecords
	}
}

// doneAt reports whether a slot whose next record would start at off is
// done: not even an empty record fits there within the packing limit.
// Writer and readers go by the same rule; the writer ends such a slot
// with no end word.
func (g geometry) doneAt(off uint64) bool { return off+2*RecordHeaderSize > g.pack }

// classLast marks a record word as its slot's last record (bits 60–61).
const classLast = 3

// placeNext returns the alignment class (bits 60–61) a writer gives the
// record after an n-byte record at off, within limit bytes of records,
// and where that record starts: 32-byte aligned after a record of up to
// 32 bytes, 64 after one of up to 64, right after a larger one or where
// the aligned start leaves no room for a word.
func placeNext(off, n, limit uint64) (class, next uint64) {
	end := off + recordSpan(n)
	var a uint64
	switch span := end - off; {
	case span <= 32:
		class, a = 1, 32
	case span <= 64:
		class, a = 2, 64
	default:
		return 0, end
	}
	if x := (SlotOffRecords+end+a-1)&^(a-1) - SlotOffRecords; x+RecordHeaderSize <= limit {
		return class, x
	}
	return 0, end
}

const (
	// Magic identifies a ring: "SBSHMRNG" read as a little-endian uint64.
	Magic uint64 = 0x474e524d48534253
	// Version is the layout version this package reads and writes:
	// version 2 packs several messages into a slot.
	Version = 2
	// HeaderSize is the size of the ring header; slot 0 starts here.
	HeaderSize = 256
	// SlotHeaderSize is the size of the per-slot header before the records.
	SlotHeaderSize = SlotOffRecords
	// MaxSlots is the largest slot count a ring may have.
	MaxSlots = 1 << 24
	// MaxSlotSize is the largest slot payload size a ring may have.
	MaxSlotSize = 1 << 30
	// MaxRegionSize bounds the whole region (header and slots).
	MaxRegionSize = 1 << 40
	lineSize      = 64
)

// Errors returned by this package.
var (
	// ErrBadGeometry means a slot count or slot size is out of range or the
	// slot count is not a power of two.
	ErrBadGeometry = errors.New("shm: bad ring geometry")
	// ErrBadHeader means a region does not hold a valid ring header.
	ErrBadHeader = errors.New("shm: bad ring header")
	// ErrTooLarge means a message does not fit in a slot.
	ErrTooLarge = errors.New("shm: message larger than slot")
	// ErrNoLoan means Send or Commit was called without a Loan.
	ErrNoLoan = errors.New("shm: no loaned slot")
	// ErrEmpty is returned by TryNext when no message is available.
	ErrEmpty = errors.New("shm: no message")
	// ErrClosed means the writer closed the ring and every message was read.
	ErrClosed = errors.New("shm: ring closed")
	// ErrCorrupt means a slot failed validation and was skipped (and counted
	// as missed); the ring was scribbled over. The reader stays usable.
	ErrCorrupt = errors.New("shm: corrupt slot skipped")
	// ErrUnsupported means the machine is big-endian or the memory is not
	// 8-byte aligned.
	ErrUnsupported = errors.New("shm: unsupported memory")
	// ErrSeals means a file descriptor lacks the seals a ring requires.
	ErrSeals = errors.New("shm: memfd not sealed")
	// ErrReadOnly means a writer was requested on a read-only region, or a
	// second writer on one region.
	ErrReadOnly = errors.New("shm: region has no writer")
	// ErrBadCursor means a memory region does not hold a valid cursor
	// block, or a cursor cannot be used the way it was asked to be.
	ErrBadCursor = errors.New("shm: bad cursor block")
	// ErrBadFrame means a slot payload is not a valid frame, or a frame
	// cannot be built from the given subject, reply and header length.
	ErrBadFrame = errors.New("shm: bad frame")
)

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// geometry is the validated, immutable shape of a ring.
type geometry struct {
	slots  uint64 // N
	mask   uint64 // N-1
	size   uint64 // S
	area   uint64 // record bytes per slot: one S-byte record and a word after it
	pack   uint64 // min(area, PackBytes)
	stride uint64
	total  uint64 // header + slots
}

// areaFor returns a slot's record area: room for one record of slotSize
// bytes and the word after it.
func areaFor(slotSize uint64) uint64 { return recordSpan(slotSize) + RecordHeaderSize }

func strideFor(slotSize uint64) uint64 {
	return (areaFor(slotSize) + SlotHeaderSize + lineSize - 1) &^ (lineSize - 1)
}

func makeGeometry(slots, slotSize uint64) (geometry, error) {
	if slots == 0 || slots > MaxSlots || slots&(slots-1) != 0 || slotSize > MaxSlotSize {
		return geometry{}, fmt.Errorf("%w: %d slots of %d bytes", ErrBadGeometry, slots, slotSize)
	}
	stride := strideFor(slotSize)
	hi, lo := bits.Mul64(slots, stride)
	if hi != 0 || lo > MaxRegionSize-HeaderSize || lo+HeaderSize > math.MaxInt {
		return geometry{}, fmt.Errorf("%w: %d slots of %d bytes is too large", ErrBadGeometry, slots, slotSize)
	}
	area := areaFor(slotSize)
	return geometry{slots: slots, mask: slots - 1, size: slotSize, area: area, pack: min(area, PackBytes), stride: stride, total: lo + HeaderSize}, nil
}

// Size returns the number of bytes a ring of slots slots of slotSize
// payload bytes occupies, header included.
func Size(slots, slotSize int) (int, error) {
	if slots < 0 || slotSize < 0 {
		return 0, fmt.Errorf("%w: %d slots of %d bytes", ErrBadGeometry, slots, slotSize)
	}
	g, err := makeGeometry(uint64(slots), uint64(slotSize))
	if err != nil {
		return 0, err
	}
	return int(g.total), nil
}

func checkMem(mem []byte) error {
	if !littleEndian {
		return fmt.Errorf("%w: big-endian machine", ErrUnsupported)
	}
	if len(mem) < HeaderSize {
		return fmt.Errorf("%w: region of %d bytes is shorter than the header", ErrBadHeader, len(mem))
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("%w: region not 8-byte aligned", ErrUnsupported)
	}
	return nil
}

// Init writes an empty ring of slots slots of slotSize payload bytes into
// mem, which must be at least Size(slots, slotSize) bytes and 8-byte
// aligned. Nobody may be using mem while Init runs.
func Init(mem []byte, slots, slotSize int) error {
	if err := checkMem(mem); err != nil {
		return err
	}
	n, err := Size(slots, slotSize)
	if err != nil {
		return err
	}
	if len(mem) < n {
		return fmt.Errorf("%w: ring needs %d bytes, region has %d", ErrBadGeometry, n, len(mem))
	}
	g, _ := makeGeometry(uint64(slots), uint64(slotSize))
	// Clear the header and each slot's header and first record word, not
	// the rest: a fresh memfd is zero already, and writing every byte
	// would make the kernel allocate the whole ring up front (64 slots of
	// 1 MiB is 64 MiB) instead of the pages messages actually use.
	clear(mem[:HeaderSize])
	for i := uint64(0); i < g.slots; i++ {
		off := g.slotOff(i)
		clear(mem[off : off+SlotOffRecords+RecordHeaderSize])
	}
	le := binary.LittleEndian
	le.PutUint32(mem[OffVersion:], Version)
	le.PutUint32(mem[OffSlots:], uint32(g.slots))
	le.PutUint32(mem[OffSlotSize:], uint32(g.size))
	le.PutUint32(mem[OffStride:], uint32(g.stride))
	le.PutUint32(mem[OffDataStart:], HeaderSize)
	// The magic goes last so a concurrent validator never accepts a
	// half-written header.
	u64(mem, OffMagic).Store(Magic)
	return nil
}

// readGeometry validates the header of mem once and returns the geometry.
// Every field is read exactly once.
func readGeometry(mem []byte) (geometry, error) {
	if err := checkMem(mem); err != nil {
		return geometry{}, err
	}
	magic := u64(mem, OffMagic).Load()
	version := u32(mem, OffVersion).Load()
	slots := u32(mem, OffSlots).Load()
	size := u32(mem, OffSlotSize).Load()
	stride := u32(mem, OffStride).Load()
	start := u32(mem, OffDataStart).Load()
	if magic != Magic {
		return geometry{}, fmt.Errorf("%w: magic %#x", ErrBadHeader, magic)
	}
	if version != Version {
		return geometry{}, fmt.Errorf("%w: version %d, want %d", ErrBadHeader, version, Version)
	}
	g, err := makeGeometry(uint64(slots), uint64(size))
	if err != nil {
		return geometry{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if uint64(stride) != g.stride || start != HeaderSize {
		return geometry{}, fmt.Errorf("%w: stride %d data start %d, want %d and %d", ErrBadHeader, stride, start, g.stride, HeaderSize)
	}
	if g.total > uint64(len(mem)) {
		return geometry{}, fmt.Errorf("%w: ring needs %d bytes, region has %d", ErrBadHeader, g.total, len(mem))
	}
	return g, nil
}

// slotOff returns the offset of the slot holding slot sequence seq; always
// in bounds for a validated geometry.
func (g *geometry) slotOff(seq uint64) int {
	return int(HeaderSize + (seq&g.mask)*g.stride)
}

func u64(mem []byte, off int) *atomic.Uint64 {
	_ = mem[off : off+8] // bounds check without a (racy) plain read
	return (*atomic.Uint64)(unsafe.Pointer(&mem[off]))
}

func u32(mem []byte, off int) *atomic.Uint32 {
	_ = mem[off : off+4] // bounds check without a (racy) plain read
	return (*atomic.Uint32)(unsafe.Pointer(&mem[off]))
}

// Stats are the counters the writer keeps in the ring header. Readers see
// them too; a hostile peer can forge them, so treat them as advisory.
type Stats struct {
	WriteSeq uint64 // the number the next message will have (= Messages)
	SlotSeq  uint64 // slots begun
	Messages uint64 // messages published
	Bytes    uint64 // payload bytes published
	Closed   bool   // the writer closed the ring
	Waiting  bool   // the writer waits for a blocking reader
}

// ReadStats reads the header counters of the ring in mem. mem must hold a
// ring header (at least HeaderSize bytes, 8-byte aligned).
func ReadStats(mem []byte) (Stats, error) {
	if err := checkMem(mem); err != nil {
		return Stats{}, err
	}
	m := u64(mem, OffMessages).Load()
	return Stats{
		WriteSeq: m,
		SlotSeq:  u64(mem, OffSlotSeq).Load(),
		Messages: m,
		Bytes:    u64(mem, OffBytes).Load(),
		Closed:   u32(mem, OffClosed).Load() != 0,
		Waiting:  u32(mem, OffWriterWaiting).Load() != 0,
	}, nil
}

// addr32 returns the address of the uint32 at off for the futex syscall.
func addr32(mem []byte, off int) *uint32 {
	_ = mem[off : off+4] // bounds check without a (racy) plain read
	return (*uint32)(unsafe.Pointer(&mem[off]))
}

// tso is true where the processor keeps stores in program order and loads
// in program order (x86's total store order): there a plain store is a
// release and a plain load an acquire, and only a store followed by a load
// of another word needs a locked instruction.
const tso = runtime.GOARCH == "amd64" || runtime.GOARCH == "386"

// store64 stores v at off so that it becomes visible after every store the
// caller made before (a release store). On TSO machines it is a plain MOV:
// Go's atomic Store is an XCHG, a full barrier that stalls the writer until
// it owns the cache line, which costs a cache-line round trip per message
// when a reader polls that line. Elsewhere it is an atomic Store. It never
// orders a later load after it: the writer's one full barrier per message
// is the slot's "done" store (Writer.Commit), unless the writer is
// fenceless. Under the race detector, which cannot see that TSO orders
// plain stores, it is always an atomic Store.
func store64(mem []byte, off int, v uint64) {
	if tso && !raceEnabled {
		_ = mem[off : off+8]
		*(*uint64)(unsafe.Pointer(&mem[off])) = v
		return
	}
	u64(mem, off).Store(v)
}

// store32 is store64 for a 32-bit word.
func store32(mem []byte, off int, v uint32) {
	if tso && !raceEnabled {
		_ = mem[off : off+4]
		*(*uint32)(unsafe.Pointer(&mem[off])) = v
		return
	}
	u32(mem, off).Store(v)
}
