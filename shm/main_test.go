package shm

import (
	"testing"
	"unsafe"

	"go.uber.org/goleak"

	"switchboard/internal/spinbase"
)

// TestMain also turns the test binary into spinbase's child process when
// BenchmarkProcPingPong16B measures the raw baseline.
func TestMain(m *testing.M) {
	spinbase.ChildMain()
	goleak.VerifyTestMain(m)
}

// alignedBuf returns n zero bytes that start on an 8-byte boundary, as the
// ring requires (mmap'd memory always does).
func alignedBuf(n int) []byte {
	words := make([]uint64, (n+7)/8+1)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
}

// fataler is the part of testing.TB that *rapid.T also has.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

// newRingPair returns a new in-memory ring with its writer and one
// reader.
func newRingPair(t fataler, slots, size int) ([]byte, *Writer, *Reader) {
	t.Helper()
	mem := newRing(t, slots, size)
	w, err := NewWriter(mem)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(mem)
	if err != nil {
		t.Fatal(err)
	}
	return mem, w, r
}

func newRing(t fataler, slots, size int) []byte {
	t.Helper()
	n, err := Size(slots, size)
	if err != nil {
		t.Fatal(err)
	}
	mem := alignedBuf(n)
	if err := Init(mem, slots, size); err != nil {
		t.Fatal(err)
	}
	return mem
}
