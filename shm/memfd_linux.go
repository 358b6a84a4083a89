package shm

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// RequiredSeals are the seals OpenReader insists on: the region can neither
// shrink (which would make readers fault) nor grow, nor be unsealed.
const RequiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// Region is a ring in a memfd, mapped read-write for its writer (Create)
// or read-only for a reader (OpenReader). Close unmaps it: every Writer and
// Reader made from the Region must be done before Close, since touching an
// unmapped ring faults the process.
type Region struct {
	mu       sync.Mutex
	fd       int
	mem      []byte
	writable bool
	writer   bool // a Writer was handed out
	closed   bool
}

// Create makes a ring of slots slots of slotSize payload bytes in a new
// memfd called name (shown in /proc/PID/fd, nothing in the file system),
// maps it read-write and seals it with RequiredSeals, plus
// F_SEAL_FUTURE_WRITE where the kernel supports it (Linux 5.1+) so that no
// one holding the fd can map it writable again.
func Create(name string, slots, slotSize int) (*Region, error) {
	size, err := Size(slots, slotSize)
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create: %w", err)
	}
	fail := func(op string, err error) (*Region, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: %s: %w", op, err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return fail("ftruncate", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	if err := Init(mem, slots, slotSize); err != nil {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, err
	}
	// F_SEAL_FUTURE_WRITE first: it must go on before F_SEAL_SEAL, and
	// older kernels reject it with EINVAL.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_FUTURE_WRITE); err != nil && !errors.Is(err, unix.EINVAL) {
		unix.Munmap(mem)
		return fail("seal", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, RequiredSeals); err != nil {
		unix.Munmap(mem)
		return fail("seal", err)
	}
	return &Region{fd: fd, mem: mem, writable: true}, nil
}

// OpenReader maps the ring in the memfd fd read-only, after checking that
// fd carries RequiredSeals, that its size matches the header and that the
// header is valid. On success the Region owns fd and Close closes it; on
// error the caller still owns fd.
func OpenReader(fd int) (*Region, error) {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: F_GET_SEALS: %w", ErrSeals, err)
	}
	if seals&RequiredSeals != RequiredSeals {
		return nil, fmt.Errorf("%w: seals %#x, want %#x", ErrSeals, seals, RequiredSeals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shm: fstat: %w", err)
	}
	if st.Size < HeaderSize || st.Size > MaxRegionSize {
		return nil, fmt.Errorf("%w: region of %d bytes", ErrBadHeader, st.Size)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap: %w", err)
	}
	g, err := readGeometry(mem)
	if err == nil && g.total != uint64(len(mem)) {
		err = fmt.Errorf("%w: ring of %d bytes in a region of %d", ErrBadHeader, g.total, len(mem))
	}
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return &Region{fd: fd, mem: mem}, nil
}

// Fd returns the memfd, to pass to a peer (for example with SCM_RIGHTS).
// It stays owned by the Region.
func (r *Region) Fd() int { return r.fd }

// Size returns the length of the mapping in bytes.
func (r *Region) Size() int { return len(r.mem) }

// Writable reports whether the region is mapped read-write (made by
// Create).
func (r *Region) Writable() bool { return r.writable }

// Writer returns the ring's writer. Only a Region made by Create has one,
// and only one Writer is handed out: otherwise ErrReadOnly.
func (r *Region) Writer() (*Writer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.writable || r.writer || r.closed {
		return nil, ErrReadOnly
	}
	w, err := NewWriter(r.mem)
	if err != nil {
		return nil, err
	}
	r.writer = true
	return w, nil
}

// NewReader returns a reader positioned at the current write sequence.
func (r *Region) NewReader() (*Reader, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	return NewReader(r.mem)
}

// Stats returns the counters in the ring header.
func (r *Region) Stats() Stats {
	s, _ := ReadStats(r.mem) // the header was validated at open
	return s
}

// Close unmaps the region and closes the fd. It is safe to call twice.
func (r *Region) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	err := unix.Munmap(r.mem)
	r.mem = nil
	if cerr := unix.Close(r.fd); err == nil {
		err = cerr
	}
	return err
}
