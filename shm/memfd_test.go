package shm

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func dup(t testing.TB, fd int) int {
	t.Helper()
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// mapPerms returns the permissions column of /proc/self/maps for the
// mapping that starts at mem.
func mapPerms(t *testing.T, mem []byte) string {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), start) {
			return strings.Fields(sc.Text())[1]
		}
	}
	t.Fatalf("no mapping at %s in /proc/self/maps", start)
	return ""
}

func TestMemfdRoundTrip(t *testing.T) {
	before := countFDs(t)
	func() {
		reg, err := Create("sb-test", 8, 64)
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
		w, err := reg.Writer()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Writer(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("second Writer: %v, want ErrReadOnly", err)
		}
		for i := range 3 {
			if err := w.Publish([]byte(fmt.Sprintf("before %d", i))); err != nil {
				t.Fatal(err)
			}
		}

		seals, err := unix.FcntlInt(uintptr(reg.Fd()), unix.F_GET_SEALS, 0)
		if err != nil {
			t.Fatal(err)
		}
		if seals&RequiredSeals != RequiredSeals || seals&unix.F_SEAL_FUTURE_WRITE == 0 {
			t.Errorf("seals %#x, want %#x and F_SEAL_FUTURE_WRITE", seals, RequiredSeals)
		}
		// Nobody holding the fd can map it writable any more (the writer's
		// own mapping predates the seal).
		if m, err := unix.Mmap(reg.Fd(), 0, reg.Size(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
			unix.Munmap(m)
			t.Error("writable mmap of a sealed ring succeeded")
		}
		if err := unix.Ftruncate(reg.Fd(), int64(reg.Size()/2)); err == nil {
			t.Error("shrinking a sealed ring succeeded")
		}

		fd := dup(t, reg.Fd())
		rd, err := OpenReader(fd)
		if err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
		defer rd.Close()
		if rd.Writable() {
			t.Error("reader region is writable")
		}
		if _, err := rd.Writer(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Writer on a reader region: %v", err)
		}
		if p := mapPerms(t, rd.mem); p != "r--s" {
			t.Errorf("reader mapping permissions %q, want r--s", p)
		}
		if p := mapPerms(t, reg.mem); p != "rw-s" {
			t.Errorf("writer mapping permissions %q, want rw-s", p)
		}

		r, err := rd.NewReader()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Publish([]byte("after")); err != nil {
			t.Fatal(err)
		}
		m, err := r.TryNext()
		if err != nil || string(m.Data) != "after" || m.Seq != 3 || m.Missed != 0 {
			t.Fatalf("TryNext = %q seq %d missed %d, %v", m.Data, m.Seq, m.Missed, err)
		}
		r.Rewind()
		for i := range 3 {
			m, err := r.TryNext()
			if want := fmt.Sprintf("before %d", i); err != nil || string(m.Data) != want {
				t.Fatalf("after Rewind: %q, %v; want %q", m.Data, err, want)
			}
		}
		if st := rd.Stats(); st.Messages != 4 || st.Bytes != 3*8+5 || st.WriteSeq != 4 {
			t.Errorf("stats through the reader mapping: %+v", st)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if m, err := r.TryNext(); err != nil || string(m.Data) != "after" {
			t.Fatalf("last message after Close: %q, %v", m.Data, err)
		}
		if _, err := r.TryNext(); !errors.Is(err, ErrClosed) {
			t.Errorf("TryNext after Close: %v, want ErrClosed", err)
		}
	}()
	if after := countFDs(t); after != before {
		t.Errorf("%d fds before, %d after", before, after)
	}
}

// TestOpenReaderRefuses checks that a reader accepts only a sealed memfd
// whose size and header agree, and leaves the fd to the caller on error.
func TestOpenReaderRefuses(t *testing.T) {
	before := countFDs(t)
	size, _ := Size(4, 16)
	mk := func(flags int, seals int, fileSize int, init func([]byte)) int {
		fd, err := unix.MemfdCreate("sb-bad", unix.MFD_CLOEXEC|flags)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Ftruncate(fd, int64(fileSize)); err != nil {
			t.Fatal(err)
		}
		mem, err := unix.Mmap(fd, 0, fileSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		init(mem)
		unix.Munmap(mem)
		if seals != 0 {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
				t.Fatal(err)
			}
		}
		return fd
	}
	good := func(mem []byte) {
		if err := Init(mem, 4, 16); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		fd   int
		want error
	}{
		{"no sealing", mk(0, 0, size, good), ErrSeals},
		{"only shrink", mk(unix.MFD_ALLOW_SEALING, unix.F_SEAL_SHRINK, size, good), ErrSeals},
		{"no seal seal", mk(unix.MFD_ALLOW_SEALING, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW, size, good), ErrSeals},
		{"garbage header", mk(unix.MFD_ALLOW_SEALING, RequiredSeals, size, func(m []byte) { m[0] = 1 }), ErrBadHeader},
		{"larger than ring", mk(unix.MFD_ALLOW_SEALING, RequiredSeals, size+4096, good), ErrBadHeader},
		{"shorter than ring", mk(unix.MFD_ALLOW_SEALING, RequiredSeals, size, func(m []byte) {
			good(m)
			m[OffSlots] = 8 // claims 8 slots in room for 4
		}), ErrBadHeader},
		{"not a power of two", mk(unix.MFD_ALLOW_SEALING, RequiredSeals, size, func(m []byte) {
			good(m)
			m[OffSlots] = 3
		}), ErrBadHeader},
		{"tiny", mk(unix.MFD_ALLOW_SEALING, RequiredSeals, 8, func([]byte) {}), ErrBadHeader},
	}
	for _, c := range cases {
		reg, err := OpenReader(c.fd)
		if err == nil {
			reg.Close()
			t.Errorf("%s: OpenReader succeeded", c.name)
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if err := unix.Close(c.fd); err != nil {
			t.Errorf("%s: fd closed by a failed OpenReader: %v", c.name, err)
		}
	}
	if after := countFDs(t); after != before {
		t.Errorf("%d fds before, %d after", before, after)
	}
}

func TestGeometryLimits(t *testing.T) {
	for _, c := range [][2]int{{0, 8}, {3, 8}, {-1, 8}, {4, -1}, {MaxSlots * 2, 8}, {4, MaxSlotSize + 1}, {MaxSlots, MaxSlotSize}} {
		if _, err := Size(c[0], c[1]); !errors.Is(err, ErrBadGeometry) {
			t.Errorf("Size(%d, %d): %v, want ErrBadGeometry", c[0], c[1], err)
		}
	}
	if n, err := Size(1, 0); err != nil || n != HeaderSize+64 {
		t.Errorf("Size(1, 0) = %d, %v", n, err)
	}
	if err := Init(alignedBuf(HeaderSize + 65)[1:], 1, 0); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Init on misaligned memory: %v", err)
	}
}
