package shm

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Cursor block layout: one page, in its own memfd, one per reader. The
// reader maps it read-write and is the only one to write it; the writer
// (and the hub) map it read-only. All fields are little-endian.
const (
	// CursorSize is the exact size of a cursor block.
	CursorSize = 4096
	// CursorMagic identifies a cursor block: "SBSHMCUR" read as a
	// little-endian uint64.
	CursorMagic uint64 = 0x5255434d48534253
	// CursorVersion is the cursor layout version this package reads and
	// writes.
	CursorVersion = 2

	CurOffMagic   = 0 // uint64, CursorMagic
	CurOffVersion = 8 // uint32, CursorVersion
	// CurOffPosition is a uint64: the lowest sequence the reader may still
	// access, that is its next sequence, or the sequence of the view it
	// holds. NoPosition until a reader attaches.
	CurOffPosition = 64
	// CurOffFutex is a uint32 the reader increments and FUTEX_WAKEs after
	// storing a new position while the ring's writer-waiting flag is set;
	// a blocked writer sleeps on it.
	CurOffFutex = 72
	// CurOffSleeping is a uint32: 0 while the reader is awake, else the
	// ring's futex value it sleeps on (or is about to) plus one. It has a
	// cache line of its own: the writer loads it after every message it
	// sends, and it changes only around sleeps, while the position on the
	// line before changes as the reader moves.
	CurOffSleeping = 128
)

// NoPosition is the position of a cursor no reader is attached to (a new
// cursor, or one detached with AttachCursor(nil)). A writer treats it, like
// any position beyond the messages published, as a reader that is caught up.
const NoPosition = ^uint64(0)

// Cursor is a reader's cursor block: where the reader is and whether it
// sleeps, published to the writer. The reader's process maps it read-write
// (CreateCursor, or OpenCursor with writable set) and attaches it to its
// Reader; the writer's process maps it read-only (OpenCursor) and hands it
// to Writer.AddReader. Close unmaps it: the Reader it is attached to must
// be done, and the Writer must have removed it (RemoveReader), first.
type Cursor struct {
	mu       sync.Mutex
	fd       int
	mem      []byte
	writable bool
	closed   bool
	release  func() error // unmaps and closes the fd; nil for plain memory
}

// initCursor writes an empty cursor block into mem (CursorSize bytes,
// 8-byte aligned): magic last, position NoPosition.
func initCursor(mem []byte) error {
	if err := checkCursorMem(mem); err != nil {
		return err
	}
	clear(mem[:CursorSize])
	u32(mem, CurOffVersion).Store(CursorVersion)
	u64(mem, CurOffPosition).Store(NoPosition)
	u64(mem, CurOffMagic).Store(CursorMagic)
	return nil
}

func checkCursorMem(mem []byte) error {
	if err := checkMem(mem); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	if len(mem) != CursorSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadCursor, len(mem), CursorSize)
	}
	return nil
}

// newCursor validates the cursor block in mem (magic and version, each
// read once) and wraps it. writable says whether the caller may write mem.
func newCursor(mem []byte, writable bool) (*Cursor, error) {
	if err := checkCursorMem(mem); err != nil {
		return nil, err
	}
	magic := u64(mem, CurOffMagic).Load()
	version := u32(mem, CurOffVersion).Load()
	if magic != CursorMagic {
		return nil, fmt.Errorf("%w: magic %#x", ErrBadCursor, magic)
	}
	if version != CursorVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadCursor, version, CursorVersion)
	}
	return &Cursor{fd: -1, mem: mem, writable: writable}, nil
}

// Fd returns the cursor's memfd, to pass to a peer. It stays owned by the
// Cursor; it is -1 for a cursor in plain memory.
func (c *Cursor) Fd() int { return c.fd }

// Writable reports whether this mapping of the cursor is read-write, as a
// Reader needs it to be.
func (c *Cursor) Writable() bool { return c.writable }

// Position returns the position the reader last published: the lowest
// sequence it may still access, or NoPosition if no reader is attached.
// Whoever did not write it must treat it as advisory: the reader may be
// hostile.
func (c *Cursor) Position() uint64 { return c.position().Load() }

// Sleeping reports whether the reader says it is in, or about to enter,
// FUTEX_WAIT. Advisory, like Position.
func (c *Cursor) Sleeping() bool { return c.sleeping().Load() != 0 }

// Close unmaps the cursor and closes its fd. It is safe to call twice.
// Closing a read-write mapping first stores NoPosition and clears the
// sleeping flag: the reader is gone, and a writer blocked on it goes on at
// once instead of after the block timeout (the futex word is bumped
// and woken too). The Reader it is attached to must be done with it and the
// Writer it was added to must have removed it: touching an unmapped
// cursor faults.
func (c *Cursor) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.writable {
		c.sleeping().Store(0)
		c.position().Store(NoPosition)
		c.futex().Add(1)
		futexWake(c.futexAddr())
	}
	if c.release == nil {
		return nil
	}
	err := c.release()
	c.mem = nil
	return err
}

func (c *Cursor) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Cursor) position() *atomic.Uint64 { return u64(c.mem, CurOffPosition) }
func (c *Cursor) sleeping() *atomic.Uint32 { return u32(c.mem, CurOffSleeping) }
func (c *Cursor) futex() *atomic.Uint32    { return u32(c.mem, CurOffFutex) }
func (c *Cursor) futexAddr() *uint32       { return addr32(c.mem, CurOffFutex) }
