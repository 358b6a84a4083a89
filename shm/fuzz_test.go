package shm

import (
	"context"
	"encoding/binary"
	"testing"
	"unsafe"
)

// validRing returns the bytes of a small ring after some traffic, as a
// seed that passes header validation.
func validRing(slots, size, msgs int) []byte {
	n, _ := Size(slots, size)
	mem := alignedBuf(n)
	if err := Init(mem, slots, size); err != nil {
		panic(err)
	}
	w, _ := NewWriter(mem)
	for i := range msgs {
		w.Publish(make([]byte, i%(size+1)))
	}
	return mem
}

// FuzzReaderOnGarbage hands a reader arbitrary bytes as a ring (header and
// slots) and a script of reads (TryNext, TakeNext, Next, Recv, Poll) interleaved
// with scribbles over the ring, as a hostile peer would make. The reader
// must never panic, never return a view outside the region or longer than
// a slot, and every call must return (Next with a cancelled context,
// bounded script).
func FuzzReaderOnGarbage(f *testing.F) {
	f.Add(validRing(4, 16, 7), []byte{0, 0, 1, 2, 3, 0, 0})
	f.Add(validRing(1, 0, 3), []byte{0, 2, 3})
	ring := validRing(8, 8, 20)
	binary.LittleEndian.PutUint64(ring[OffSlotSeq:], ^uint64(0))
	f.Add(ring, []byte{0, 0, 0, 2})
	ring = validRing(2, 32, 5)
	binary.LittleEndian.PutUint32(ring[HeaderSize+SlotOffRecords:], 1<<31)
	f.Add(ring, []byte{4, 0, 0, 0, 0, 0})
	f.Add(make([]byte, HeaderSize), []byte{0})

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, region, script []byte) {
		if len(region) > 1<<20 || len(script) > 1024 {
			return
		}
		mem := alignedBuf(len(region))
		copy(mem, region)
		if len(mem) > HeaderSize {
			// Most inputs fail validation; also try each one with a valid
			// header and the fuzzer's bytes elsewhere.
			fuzzRead(t, mem, script, canceled)
			copy(mem[:OffSlotSeq], validRing(4, 16, 0)[:OffSlotSeq])
		}
		fuzzRead(t, mem, script, canceled)
	})
}

func fuzzRead(t *testing.T, mem, script []byte, ctx context.Context) {
	r, err := NewReader(mem)
	if err != nil {
		return
	}
	// With a cursor: every position store also reads the (scribbled)
	// writer-waiting flag.
	if err := r.AttachCursor(memCursor(t)); err != nil {
		t.Fatal(err)
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	hi := lo + uintptr(len(mem))
	checkMsg := func(m Msg) {
		if len(m.Data) > r.SlotSize() {
			t.Fatalf("view of %d bytes, slot size %d", len(m.Data), r.SlotSize())
		}
		if len(m.Data) > 0 {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(m.Data)))
			if p < lo || p+uintptr(len(m.Data)) > hi {
				t.Fatalf("view outside the region")
			}
		}
	}
	for i := 0; i < len(script); i++ {
		switch script[i] % 8 {
		case 0:
			m, _ := r.TryNext()
			checkMsg(m)
		case 1:
			r.Release()
		case 2:
			m, _ := r.Next(ctx)
			checkMsg(m)
		case 3:
			// Recv returns a copy, not a view: only its size is bounded.
			if _, m, _ := r.Recv(ctx, nil); len(m.Data) > r.SlotSize() {
				t.Fatalf("copy of %d bytes, slot size %d", len(m.Data), r.SlotSize())
			}
		case 4: // scribble: offset (2 bytes, scaled), value
			if i+3 < len(script) {
				off := int(binary.LittleEndian.Uint16(script[i+1:])) * len(mem) / 65536
				mem[off] = script[i+3]
				i += 3
			}
		case 5:
			r.Rewind()
		case 7:
			data, _ := r.TakeNext()
			checkMsg(Msg{Data: data})
		case 6:
			r.Poll(4, func(data []byte, _, _ uint64) bool {
				checkMsg(Msg{Data: data})
				return true
			})
		}
	}
	// A reader may always drain: a bounded number of TryNext calls
	// cannot panic, whatever the ring says.
	for range 16 {
		m, _ := r.TryNext()
		checkMsg(m)
	}
}
