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
	OffWriteSeq  = 64  // uint64, next sequence to publish
	OffMessages  = 128 // uint64, messages published
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
	SlotOffSeq     = 0  // uint64, seqlock word: 2s+1 writing s, 2s+2 s done
	SlotOffLen     = 8  // uint32, payload length
	SlotOffPayload = 16 // payload bytes
)

const (
	// Magic identifies a ring: "SBSHMRNG" read as a little-endian uint64.
	Magic uint64 = 0x474e524d48534253
	// Version is the layout version this package reads and writes.
	Version = 1
	// HeaderSize is the size of the ring header; slot 0 starts here.
	HeaderSize = 256
	// SlotHeaderSize is the size of the per-slot header before the payload.
	SlotHeaderSize = SlotOffPayload
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
	stride uint64
	total  uint64 // header + slots
}

func strideFor(slotSize uint64) uint64 {
	return (slotSize + SlotHeaderSize + lineSize - 1) &^ (lineSize - 1)
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
	return geometry{slots: slots, mask: slots - 1, size: slotSize, stride: stride, total: lo + HeaderSize}, nil
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
	// Clear the header and each slot's sequence word and length, not the
	// payloads: a fresh memfd is zero already, and writing every byte
	// would make the kernel allocate the whole ring up front (64 slots of
	// 1 MiB is 64 MiB) instead of the pages messages actually use.
	clear(mem[:HeaderSize])
	for i := uint64(0); i < g.slots; i++ {
		off := g.slotOff(i)
		clear(mem[off : off+SlotOffPayload])
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

// slotOff returns the offset of the slot holding sequence seq; always in
// bounds for a validated geometry.
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
	WriteSeq uint64 // next sequence to publish
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
	return Stats{
		WriteSeq: u64(mem, OffWriteSeq).Load(),
		Messages: u64(mem, OffMessages).Load(),
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
