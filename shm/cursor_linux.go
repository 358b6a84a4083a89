package shm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// CursorSeals are the seals of a cursor memfd: it can neither shrink (which
// would fault its readers) nor grow, nor be sealed further. It is not
// sealed against writing: the reader maps it read-write.
const CursorSeals = RequiredSeals

// CreateCursor makes an empty cursor block (position NoPosition) in a new
// memfd called name, sealed with CursorSeals and mapped read-write. The
// creator passes the fd to the reader (OpenCursor with writable set) and to
// the ring's writer (OpenCursor read-only, then Writer.AddReader).
func CreateCursor(name string) (*Cursor, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shm: cursor memfd_create: %w", err)
	}
	fail := func(op string, err error) (*Cursor, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: cursor %s: %w", op, err)
	}
	if err := unix.Ftruncate(fd, CursorSize); err != nil {
		return fail("ftruncate", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, CursorSeals); err != nil {
		return fail("seal", err)
	}
	mem, err := unix.Mmap(fd, 0, CursorSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	if err := initCursor(mem); err != nil {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, err
	}
	c, err := newCursor(mem, true)
	if err != nil {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, err
	}
	c.fd = fd
	c.release = releaser(fd, mem)
	return c, nil
}

// OpenCursor maps the cursor block in the memfd fd, read-write if writable
// (the reader's side) or read-only (the writer's or an observer's), after
// checking that fd carries CursorSeals, is exactly CursorSize bytes and
// holds a cursor header. On success the Cursor owns fd and Close closes
// it; on error the caller still owns fd.
func OpenCursor(fd int, writable bool) (*Cursor, error) {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: cursor F_GET_SEALS: %w", ErrSeals, err)
	}
	if seals&CursorSeals != CursorSeals {
		return nil, fmt.Errorf("%w: cursor seals %#x, want %#x", ErrSeals, seals, CursorSeals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shm: cursor fstat: %w", err)
	}
	if st.Size != CursorSize {
		return nil, fmt.Errorf("%w: cursor memfd of %d bytes, want %d", ErrBadCursor, st.Size, CursorSize)
	}
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	mem, err := unix.Mmap(fd, 0, CursorSize, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: cursor mmap (writable %v): %w", writable, err)
	}
	c, err := newCursor(mem, writable)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	c.fd = fd
	c.release = releaser(fd, mem)
	return c, nil
}

// releaser returns a function that unmaps mem and closes fd.
func releaser(fd int, mem []byte) func() error {
	return func() error {
		err := unix.Munmap(mem)
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		return err
	}
}
