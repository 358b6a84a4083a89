package shm

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPeerWriterFlow plays the hub and a publisher in one process: the
// creator makes an unsealed ring, the writer opens a dup of its fd with
// OpenWriter (which seals it), the creator checks Sealed, a reader opens
// it, frames flow, and the creator closes the ring.
func TestPeerWriterFlow(t *testing.T) {
	checkFDs(t)
	creator, err := CreateUnsealed("sb-peer", 8, 256)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { creator.Close() })
	if creator.Slots() != 8 || creator.SlotSize() != 256 || !creator.Writable() {
		t.Errorf("creator region: %d slots of %d, writable %v", creator.Slots(), creator.SlotSize(), creator.Writable())
	}
	if _, err := creator.Writer(); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Writer on the creator's region: %v, want ErrReadOnly", err)
	}
	if ok, err := creator.Sealed(); ok || !errors.Is(err, ErrSeals) {
		t.Errorf("Sealed before the writer opened it: %v, %v", ok, err)
	}
	fd := dup(t, creator.Fd())
	if reg, err := OpenReader(fd); err == nil {
		reg.Close()
		t.Fatal("OpenReader took an unsealed ring")
	}

	wreg, err := OpenWriter(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { wreg.Close() })
	if ok, err := creator.Sealed(); !ok || err != nil {
		t.Fatalf("Sealed after OpenWriter: %v, %v", ok, err)
	}
	if p := mapPerms(t, wreg.mem); p != "rw-s" {
		t.Errorf("writer mapping %q, want rw-s", p)
	}
	if m, err := unix.Mmap(creator.Fd(), 0, creator.Size(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
		unix.Munmap(m)
		t.Error("writable mmap after OpenWriter sealed the ring")
	}
	fd2 := dup(t, creator.Fd())
	if reg, err := OpenWriter(fd2); !errors.Is(err, ErrSeals) {
		if err == nil {
			reg.Close()
		}
		t.Errorf("second OpenWriter: %v, want ErrSeals", err)
	}
	unix.Close(fd2)

	w, err := wreg.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wreg.Writer(); !errors.Is(err, ErrReadOnly) {
		t.Errorf("second Writer: %v", err)
	}
	rfd := dup(t, creator.Fd())
	rreg, err := OpenReader(rfd)
	if err != nil {
		unix.Close(rfd)
		t.Fatal(err)
	}
	t.Cleanup(func() { rreg.Close() })
	if err := rreg.CloseRing(); !errors.Is(err, ErrReadOnly) {
		t.Errorf("CloseRing on a reader's region: %v, want ErrReadOnly", err)
	}
	r, err := rreg.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.PublishFrame(fmt.Sprint("peer.", i), "_INBOX.x", []byte("NATS/1.0\r\n\r\n"), []byte("data")); err != nil {
			t.Fatal(err)
		}
	}
	if st := creator.Stats(); st.Messages != 3 || st.WriteSeq != 3 {
		t.Errorf("creator's stats %+v", st)
	}
	if err := creator.CloseRing(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m, err := r.TryNext()
		if err != nil {
			t.Fatal(err)
		}
		f, err := ParseFrame(m.Data)
		if err != nil || f.Subject != fmt.Sprint("peer.", i) || f.Reply != "_INBOX.x" || string(f.Data()) != "data" || f.HdrLen != 12 {
			t.Fatalf("frame %d: %+v, %v", i, f, err)
		}
	}
	if _, err := r.TryNext(); !errors.Is(err, ErrClosed) {
		t.Errorf("after CloseRing: %v, want ErrClosed", err)
	}
	if st := creator.Stats(); !st.Closed {
		t.Error("creator's stats do not say closed")
	}
	creator.Close()
	if err := creator.CloseRing(); !errors.Is(err, ErrClosed) {
		t.Errorf("CloseRing after Close: %v", err)
	}
}

// TestOpenWriterContinues: a writer that opens a ring continues at the
// header's write sequence, and readers see one history.
func TestOpenWriterContinues(t *testing.T) {
	checkFDs(t)
	creator, err := CreateUnsealed("sb-peer", 4, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer creator.Close()
	old, err := NewWriter(creator.mem) // a writer before this one
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		old.Publish([]byte{byte(i)})
	}
	fd := dup(t, creator.Fd())
	wreg, err := OpenWriter(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	defer wreg.Close()
	w, _ := wreg.Writer()
	if w.Seq() != 10 {
		t.Fatalf("new writer at %d, want 10", w.Seq())
	}
	w.Publish([]byte{10})
	r, _ := creator.NewReader()
	r.Rewind()
	for i := 7; i <= 10; i++ {
		m, err := r.TryNext()
		if err != nil || m.Seq != uint64(i) || m.Data[0] != byte(i) {
			t.Fatalf("message %d: %+v, %v", i, m, err)
		}
	}
	if st := creator.Stats(); st.Messages != 11 || st.WriteSeq != 11 {
		t.Errorf("stats %+v", st)
	}
}

// TestOpenWriterRefuses: OpenWriter takes only an unsealed ring with
// shrink and grow seals and a valid header, and leaves the fd to the
// caller on error.
func TestOpenWriterRefuses(t *testing.T) {
	checkFDs(t)
	size, _ := Size(4, 16)
	mk := func(flags, seals, fileSize int, init func([]byte)) int {
		fd, err := unix.MemfdCreate("sb-bad-writer", unix.MFD_CLOEXEC|flags)
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
	sealed, err := Create("sb-sealed", 4, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer sealed.Close()
	const sealing = unix.MFD_ALLOW_SEALING
	cases := []struct {
		name string
		fd   int
		want error
	}{
		{"sealed by Create", dup(t, sealed.Fd()), ErrSeals},
		{"no sealing", mk(0, 0, size, good), ErrSeals},
		{"only shrink", mk(sealing, unix.F_SEAL_SHRINK, size, good), ErrSeals},
		{"seal seal", mk(sealing, RequiredSeals, size, good), ErrSeals},
		{"garbage header", mk(sealing, SizeSeals, size, func(m []byte) { m[0] = 1 }), ErrBadHeader},
		{"larger than ring", mk(sealing, SizeSeals, size+4096, good), ErrBadHeader},
		{"tiny", mk(sealing, SizeSeals, 8, func([]byte) {}), ErrBadHeader},
	}
	for _, c := range cases {
		reg, err := OpenWriter(c.fd)
		if err == nil {
			reg.Close()
			t.Errorf("%s: OpenWriter succeeded", c.name)
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if err := unix.Close(c.fd); err != nil {
			t.Errorf("%s: fd closed by a failed OpenWriter: %v", c.name, err)
		}
	}
}

// TestOpenWriterRace: of several OpenWriter calls racing on one ring,
// exactly one wins.
func TestOpenWriterRace(t *testing.T) {
	checkFDs(t)
	for range 20 {
		creator, err := CreateUnsealed("sb-race", 2, 8)
		if err != nil {
			t.Fatal(err)
		}
		const n = 4
		fds := make([]int, n)
		for i := range fds {
			fds[i] = dup(t, creator.Fd())
		}
		var wg sync.WaitGroup
		regs := make([]*Region, n)
		for i := range n {
			wg.Go(func() {
				reg, err := OpenWriter(fds[i])
				if err != nil {
					unix.Close(fds[i])
					return
				}
				regs[i] = reg
			})
		}
		wg.Wait()
		won := 0
		for _, reg := range regs {
			if reg != nil {
				won++
				reg.Close()
			}
		}
		if won != 1 {
			t.Fatalf("%d OpenWriter calls succeeded, want 1", won)
		}
		if ok, err := creator.Sealed(); !ok {
			t.Fatal(err)
		}
		creator.Close()
	}
}
