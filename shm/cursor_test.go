package shm

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// curPair is one cursor block mapped twice, as the reader (read-write)
// and the writer (read-only) would map it.
type curPair struct{ r, w *Cursor }

// cursorPair creates a cursor and opens a read-only mapping of a dup of
// its fd; both are closed when the test ends.
func cursorPair(t testing.TB, name string) curPair {
	t.Helper()
	rc, err := CreateCursor(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	fd, err := unix.FcntlInt(uintptr(rc.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := OpenCursor(fd, false)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Close() })
	return curPair{r: rc, w: wc}
}

// memCursor returns a cursor block in plain memory, as tests of
// in-process rings use.
func memCursor(t fataler) *Cursor {
	t.Helper()
	mem := alignedBuf(CursorSize)
	if err := initCursor(mem); err != nil {
		t.Fatal(err)
	}
	c, err := newCursor(mem, true)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCursorRoundTrip(t *testing.T) {
	checkFDs(t) // after the cleanups that close the cursors and rings
	c := cursorPair(t, "sb-cursor")
	seals, err := unix.FcntlInt(uintptr(c.r.Fd()), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	if seals != CursorSeals {
		t.Errorf("cursor seals %#x, want exactly %#x", seals, CursorSeals)
	}
	if p := mapPerms(t, c.r.mem); p != "rw-s" {
		t.Errorf("reader's cursor mapping %q, want rw-s", p)
	}
	if p := mapPerms(t, c.w.mem); p != "r--s" {
		t.Errorf("writer's cursor mapping %q, want r--s", p)
	}
	if !c.r.Writable() || c.w.Writable() {
		t.Errorf("Writable: reader side %v, writer side %v", c.r.Writable(), c.w.Writable())
	}
	if err := unix.Ftruncate(c.r.Fd(), 2*CursorSize); err == nil {
		t.Error("growing a sealed cursor succeeded")
	}
	if got := c.w.Position(); got != NoPosition {
		t.Errorf("new cursor at %d, want NoPosition", got)
	}

	// A third mapping, read-write, sees the same block.
	fd := dup(t, c.r.Fd())
	rw, err := OpenCursor(fd, true)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	defer rw.Close()

	w, rs := openPair(t, 8, 16, 1)
	r := rs[0]
	if err := r.AttachCursor(c.w); err == nil {
		t.Error("AttachCursor took a read-only cursor")
	}
	if err := r.AttachCursor(c.r); err != nil {
		t.Fatal(err)
	}
	if r.Cursor() != c.r {
		t.Error("Cursor() is not the attached cursor")
	}
	for i := range 3 {
		w.Publish([]byte{byte(i)})
	}
	if got := rw.Position(); got != 0 {
		t.Errorf("position %d before reading, want 0", got)
	}
	m, err := r.TryNext()
	if err != nil || m.Seq != 0 {
		t.Fatalf("TryNext: seq %d, %v", m.Seq, err)
	}
	if got := c.w.Position(); got != 0 {
		t.Errorf("position %d while holding view 0, want 0", got)
	}
	r.Release()
	if got := c.w.Position(); got != 1 {
		t.Errorf("position %d after Release, want 1", got)
	}
	if _, _, err := r.Recv(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if got := c.w.Position(); got != 2 {
		t.Errorf("position %d after Recv, want 2", got)
	}
	r.Seek(7)
	if got := c.w.Position(); got != 7 || r.Pos() != 7 {
		t.Errorf("after Seek(7): cursor %d, reader %d", got, r.Pos())
	}
	r.Rewind()
	if got := c.w.Position(); got != 0 {
		t.Errorf("position %d after Rewind, want 0", got)
	}
	if err := r.AttachCursor(nil); err != nil {
		t.Fatal(err)
	}
	if got := c.w.Position(); got != NoPosition {
		t.Errorf("position %d after detaching, want NoPosition", got)
	}
	if err := c.r.Close(); err != nil {
		t.Error(err)
	}
	if err := c.r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := r.AttachCursor(c.r); err == nil {
		t.Error("AttachCursor took a closed cursor")
	}
	if err := w.AddReader(1, c.r, false); err == nil {
		t.Error("AddReader took a closed cursor")
	}
	if err := w.AddReader(1, nil, false); err == nil {
		t.Error("AddReader took a nil cursor")
	}
	if err := w.AddReader(1, c.w, false); err != nil {
		t.Fatal(err)
	}
	if err := w.AddReader(1, rw, true); err == nil {
		t.Error("AddReader took a duplicate id")
	}
	if !w.RemoveReader(1) || w.RemoveReader(1) {
		t.Error("RemoveReader: want true, then false")
	}
}

// TestOpenCursorRefuses checks that OpenCursor accepts only a sealed memfd
// of exactly one page with a cursor header, and leaves the fd to the
// caller on error.
func TestOpenCursorRefuses(t *testing.T) {
	before := countFDs(t)
	mk := func(flags, seals, size int, init func([]byte)) int {
		fd, err := unix.MemfdCreate("sb-bad-cursor", unix.MFD_CLOEXEC|flags)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Ftruncate(fd, int64(size)); err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err != nil {
				t.Fatal(err)
			}
			init(mem)
			unix.Munmap(mem)
		}
		if seals != 0 {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
				t.Fatal(err)
			}
		}
		return fd
	}
	good := func(mem []byte) {
		if err := initCursor(mem[:CursorSize]); err != nil {
			t.Fatal(err)
		}
	}
	const sealing = unix.MFD_ALLOW_SEALING
	cases := []struct {
		name     string
		fd       int
		writable bool
		want     error
	}{
		{"no sealing", mk(0, 0, CursorSize, good), false, ErrSeals},
		{"no seal seal", mk(sealing, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW, CursorSize, good), true, ErrSeals},
		{"too large", mk(sealing, CursorSeals, 2*CursorSize, good), false, ErrBadCursor},
		{"too small", mk(sealing, CursorSeals, CursorSize/2, func([]byte) {}), false, ErrBadCursor},
		{"empty", mk(sealing, CursorSeals, 0, nil), false, ErrBadCursor},
		{"bad magic", mk(sealing, CursorSeals, CursorSize, func(m []byte) { good(m); m[0] ^= 1 }), false, ErrBadCursor},
		{"bad version", mk(sealing, CursorSeals, CursorSize, func(m []byte) { good(m); m[CurOffVersion] = 9 }), false, ErrBadCursor},
		{"a ring, not a cursor", mk(sealing, CursorSeals, CursorSize, func(m []byte) { Init(m, 8, 128) }), false, ErrBadCursor},
		{"write-sealed, opened writable", mk(sealing, unix.F_SEAL_FUTURE_WRITE, CursorSize, good), true, nil},
	}
	for _, c := range cases {
		if c.name == "write-sealed, opened writable" {
			// F_SEAL_SEAL must come after F_SEAL_FUTURE_WRITE.
			if _, err := unix.FcntlInt(uintptr(c.fd), unix.F_ADD_SEALS, CursorSeals); err != nil {
				t.Fatal(err)
			}
		}
		cur, err := OpenCursor(c.fd, c.writable)
		if err == nil {
			cur.Close()
			t.Errorf("%s: OpenCursor succeeded", c.name)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if err := unix.Close(c.fd); err != nil {
			t.Errorf("%s: fd closed by a failed OpenCursor: %v", c.name, err)
		}
	}
	if after := countFDs(t); after != before {
		t.Errorf("%d fds before, %d after", before, after)
	}
}
