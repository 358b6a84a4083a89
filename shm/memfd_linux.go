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

// SizeSeals are the seals of a ring made by CreateUnsealed: its size is
// fixed, but a writer may still map it read-write (OpenWriter) and seal it.
const SizeSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW

// Region is a ring in a memfd, mapped read-write for its writer (Create,
// OpenWriter) or its creator (CreateUnsealed), or read-only for a reader
// (OpenReader). Close unmaps it: every Writer and Reader made from the
// Region must be done before Close, since touching an unmapped ring faults
// the process.
type Region struct {
	mu       sync.Mutex
	fd       int
	mem      []byte
	g        geometry
	writable bool // mapped read-write
	canWrite bool // hands out a Writer (Create, OpenWriter)
	writer   bool // a Writer was handed out
	closed   bool
}

// Create makes a ring of slots slots of slotSize payload bytes in a new
// memfd called name (shown in /proc/PID/fd, nothing in the file system),
// maps it read-write and seals it with RequiredSeals, plus
// F_SEAL_FUTURE_WRITE where the kernel supports it (Linux 5.1+) so that no
// one holding the fd can map it writable again. The Region hands out the
// ring's one Writer.
func Create(name string, slots, slotSize int) (*Region, error) {
	reg, err := newMemfdRing(name, slots, slotSize)
	if err != nil {
		return nil, err
	}
	if err := sealWrites(reg.fd); err != nil {
		unix.Munmap(reg.mem)
		unix.Close(reg.fd)
		return nil, err
	}
	reg.canWrite = true
	return reg, nil
}

// CreateUnsealed makes a ring like Create for a writer in another process:
// the memfd is sealed with SizeSeals only, so the writer can still map it
// read-write. The creator passes the fd to the writer, which opens it with
// OpenWriter and seals it; the creator checks Sealed before it hands the fd
// to any reader. The creator keeps its read-write mapping to read the
// header (Stats) and to close the ring (CloseRing), never to publish: the
// Region hands out no Writer.
func CreateUnsealed(name string, slots, slotSize int) (*Region, error) {
	reg, err := newMemfdRing(name, slots, slotSize)
	if err != nil {
		return nil, err
	}
	if _, err := unix.FcntlInt(uintptr(reg.fd), unix.F_ADD_SEALS, SizeSeals); err != nil {
		unix.Munmap(reg.mem)
		unix.Close(reg.fd)
		return nil, fmt.Errorf("shm: seal: %w", err)
	}
	return reg, nil
}

// newMemfdRing makes a memfd of the ring's size, maps it read-write and
// writes an empty ring into it.
func newMemfdRing(name string, slots, slotSize int) (*Region, error) {
	size, err := Size(slots, slotSize)
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: ftruncate: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: mmap: %w", err)
	}
	if err := Init(mem, slots, slotSize); err != nil {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, err
	}
	g, _ := makeGeometry(uint64(slots), uint64(slotSize))
	return &Region{fd: fd, mem: mem, g: g, writable: true}, nil
}

// sealWrites seals fd with F_SEAL_FUTURE_WRITE where the kernel supports
// it, then with RequiredSeals. Mappings made before keep their access.
func sealWrites(fd int) error {
	// F_SEAL_FUTURE_WRITE first: it must go on before F_SEAL_SEAL, and
	// older kernels reject it with EINVAL.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_FUTURE_WRITE); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("shm: seal against writes: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, RequiredSeals); err != nil {
		return fmt.Errorf("shm: seal: %w", err)
	}
	return nil
}

// futureWriteSupported reports whether the kernel knows
// F_SEAL_FUTURE_WRITE (Linux 5.1 and later), probed once on a scratch
// memfd.
var futureWriteSupported = sync.OnceValue(func() bool {
	fd, err := unix.MemfdCreate("sb-seal-probe", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return true // cannot tell; insist on the seal
	}
	defer unix.Close(fd)
	_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_FUTURE_WRITE)
	return !errors.Is(err, unix.EINVAL)
})

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
	return mapRing(fd, false)
}

// OpenWriter maps the ring in the memfd fd read-write for its one writer,
// then seals it (F_SEAL_FUTURE_WRITE where the kernel supports it, then
// RequiredSeals) so that nobody else can ever map it writable. fd must come
// from CreateUnsealed: it must carry SizeSeals and not yet F_SEAL_SEAL or
// F_SEAL_FUTURE_WRITE (a ring is opened for writing once), and its size
// and header must agree. The Region hands out the Writer, which continues
// after the slots and messages the header counts. On success the Region
// owns fd; on error the caller still owns fd.
func OpenWriter(fd int) (*Region, error) {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: F_GET_SEALS: %w", ErrSeals, err)
	}
	if seals&SizeSeals != SizeSeals {
		return nil, fmt.Errorf("%w: seals %#x lack shrink and grow (%#x)", ErrSeals, seals, SizeSeals)
	}
	if seals&(unix.F_SEAL_SEAL|unix.F_SEAL_FUTURE_WRITE|unix.F_SEAL_WRITE) != 0 {
		return nil, fmt.Errorf("%w: seals %#x: the ring is sealed against writers already", ErrSeals, seals)
	}
	reg, err := mapRing(fd, true)
	if err != nil {
		return nil, err
	}
	// Another OpenWriter racing on the same memfd: only one of the two
	// can add F_SEAL_SEAL; the other fails here.
	if err := sealWrites(fd); err != nil {
		unix.Munmap(reg.mem)
		return nil, err
	}
	reg.canWrite = true
	return reg, nil
}

// mapRing maps the ring in fd after checking its size and header.
func mapRing(fd int, writable bool) (*Region, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shm: fstat: %w", err)
	}
	if st.Size < HeaderSize || st.Size > MaxRegionSize {
		return nil, fmt.Errorf("%w: region of %d bytes", ErrBadHeader, st.Size)
	}
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap (writable %v): %w", writable, err)
	}
	g, err := readGeometry(mem)
	if err == nil && g.total != uint64(len(mem)) {
		err = fmt.Errorf("%w: ring of %d bytes in a region of %d", ErrBadHeader, g.total, len(mem))
	}
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return &Region{fd: fd, mem: mem, g: g, writable: writable}, nil
}

// Fd returns the memfd, to pass to a peer (for example with SCM_RIGHTS).
// It stays owned by the Region.
func (r *Region) Fd() int { return r.fd }

// Size returns the length of the mapping in bytes.
func (r *Region) Size() int { return len(r.mem) }

// Slots returns N, the ring's slot count, as validated when the region was
// made or opened.
func (r *Region) Slots() int { return int(r.g.slots) }

// SlotSize returns S, the ring's slot payload size.
func (r *Region) SlotSize() int { return int(r.g.size) }

// Writable reports whether the region is mapped read-write (made by Create
// or CreateUnsealed, or opened by OpenWriter).
func (r *Region) Writable() bool { return r.writable }

// Writer returns the ring's writer. Only a Region made by Create or opened
// by OpenWriter has one, and only one Writer is handed out: otherwise
// ErrReadOnly.
func (r *Region) Writer() (*Writer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.canWrite || r.writer || r.closed {
		return nil, ErrReadOnly
	}
	w, err := NewWriter(r.mem)
	if err != nil {
		return nil, err
	}
	r.writer = true
	return w, nil
}

// NewReader returns a reader positioned at the ring.s end.
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
	r.mu.Lock()
	defer r.mu.Unlock()
	s, _ := ReadStats(r.mem) // the header was validated at open; zero once closed
	return s
}

// Sealed reports whether the memfd is sealed for readers: RequiredSeals,
// and F_SEAL_FUTURE_WRITE unless the kernel predates it. The creator of a
// CreateUnsealed ring calls it after the writer said it opened the ring
// (OpenWriter), before handing the fd to any reader. If it is not sealed,
// the error says why.
func (r *Region) Sealed() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, fmt.Errorf("shm: Sealed on a closed region: %w", ErrClosed)
	}
	seals, err := unix.FcntlInt(uintptr(r.fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return false, fmt.Errorf("%w: F_GET_SEALS: %w", ErrSeals, err)
	}
	if seals&RequiredSeals != RequiredSeals {
		return false, fmt.Errorf("%w: seals %#x, want %#x", ErrSeals, seals, RequiredSeals)
	}
	if seals&unix.F_SEAL_FUTURE_WRITE == 0 && futureWriteSupported() {
		return false, fmt.Errorf("%w: seals %#x lack F_SEAL_FUTURE_WRITE", ErrSeals, seals)
	}
	return true, nil
}

// CloseRing marks the ring closed through a read-write mapping (the
// creator's, typically, reclaiming the ring of a writer that died), clears
// the writer-waiting flag and wakes every reader: they return ErrClosed
// once they have read what the ring holds. A live writer is not stopped;
// it should be told to stop first. ErrReadOnly on a read-only region,
// ErrClosed once Close was called.
func (r *Region) CloseRing() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("shm: CloseRing on a closed region: %w", ErrClosed)
	}
	if !r.writable {
		return ErrReadOnly
	}
	u32(r.mem, OffClosed).Store(1)
	u32(r.mem, OffWriterWaiting).Store(0)
	u32(r.mem, OffFutex).Add(1)
	futexWake(addr32(r.mem, OffFutex))
	return nil
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
