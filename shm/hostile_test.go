package shm

// Hostile writing and reading, shared by the multi-process tests'
// parents and children (proc_test.go).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"
	"unsafe"
)

// scribble overwrites the ring in mem (made with slots and size) until stop
// closes, mixing random bytes over the whole region, random words anywhere,
// plausible slots (valid-looking sequence words, random lengths, a write
// sequence nearby), header fields, wake-ups, and bursts of valid traffic
// through a Writer after re-initialising the ring. It returns the rounds.
func scribble(mem []byte, slots, size int, rng *rand.Rand, stop <-chan struct{}) int {
	le := binary.LittleEndian
	n := uint64(slots)
	stride := int(strideFor(uint64(size)))
	slotOff := func(seq uint64) int { return HeaderSize + int(seq%n)*stride }
	buf := make([]byte, size)
	for rounds := 0; ; rounds++ {
		select {
		case <-stop:
			return rounds
		default:
		}
		switch rng.IntN(10) {
		case 0: // random bytes over everything, header included
			for off := 0; off+8 <= len(mem); off += 8 {
				le.PutUint64(mem[off:], rng.Uint64())
			}
		case 1: // random words anywhere, aligned or not
			for range 64 {
				le.PutUint64(mem[rng.IntN(len(mem)-7):], rng.Uint64())
			}
		case 2, 3: // slots and records that look valid around a plausible slot sequence
			w := le.Uint64(mem[OffSlotSeq:])
			if rng.IntN(4) == 0 {
				w = rng.Uint64N(8 * n)
			}
			for range 16 {
				s := w - 1 - rng.Uint64N(n+2)
				off := slotOff(s)
				switch rng.IntN(4) {
				case 0:
					le.PutUint64(mem[off:], 2*s+1)
				case 1:
					le.PutUint64(mem[off:], 2*(s+n)+2)
				default:
					le.PutUint64(mem[off:], 2*s+2)
				}
				le.PutUint64(mem[off+SlotOffFirst:], rng.Uint64N(1<<20))
				// A few record words with the slot's tag: random lengths,
				// end words, at random 8-byte offsets of the slot.
				area := int(areaFor(uint64(size)))
				for range 1 + rng.IntN(4) {
					at := off + SlotOffRecords + 8*rng.IntN(area/8)
					l := uint64(rng.Uint32N(uint32(2*size + 2)))
					if rng.IntN(8) == 0 {
						l = uint64(rng.Uint32())
					}
					word := recordHi(s) | l
					if rng.IntN(6) == 0 {
						word = recordHi(s) | recEnd
					}
					le.PutUint64(mem[at:], word)
				}
			}
			le.PutUint64(mem[OffSlotSeq:], w+rng.Uint64N(3))
		case 4: // header fields
			offs := []int{OffMagic, OffSlots, OffSlotSize, OffStride, OffDataStart, OffSlotSeq, OffMessages, OffBytes}
			vals := []uint64{0, 1, ^uint64(0), 1 << 63, rng.Uint64(), rng.Uint64N(4 * n)}
			le.PutUint64(mem[offs[rng.IntN(len(offs))]:], vals[rng.IntN(len(vals))])
			le.PutUint32(mem[OffClosed:], uint32(rng.IntN(2)))
		case 5: // wake every sleeper
			u32(mem, OffFutex).Add(1)
			futexWake(addr32(mem, OffFutex))
		case 6: // flip a slot between this lap and the next: torn views
			w := le.Uint64(mem[OffSlotSeq:])
			s := w - 1 - rng.Uint64N(n)
			off := slotOff(s)
			for range 32 {
				le.PutUint64(mem[off:], 2*(s+n)+1)
				mem[off+SlotOffRecords+RecordHeaderSize] ^= 0xff
				le.PutUint64(mem[off:], 2*s+1)
			}
		case 7: // zeros
			clear(mem)
		default: // a valid ring again, and some real traffic
			if err := Init(mem, slots, size); err != nil {
				panic(err)
			}
			wr, err := NewWriter(mem)
			if err != nil {
				panic(err)
			}
			for seq := range uint64(rng.IntN(3 * slots)) {
				publishVaried(wr, seq, buf)
			}
		}
	}
}

type hostileCounts struct {
	calls, msgs, empty, corrupt, closed, timeouts, rewinds, releases, torn uint64
	maxCall                                                                time.Duration
}

func (c hostileCounts) String() string {
	return fmt.Sprintf("calls=%d msgs=%d empty=%d corrupt=%d closed=%d timeouts=%d rewinds=%d releases=%d torn=%d maxcall_ns=%d",
		c.calls, c.msgs, c.empty, c.corrupt, c.closed, c.timeouts, c.rewinds, c.releases, c.torn, c.maxCall.Nanoseconds())
}

// hostileRead calls TryNext, Next and Recv (with short deadlines), Rewind
// and Release on r in random order until stop closes. Every message must
// be at most a slot long and every view must lie in the slot area of mem;
// every byte of it is read, so a view outside the mapping would fault.
func hostileRead(mem []byte, r *Reader, rng *rand.Rand, stop <-chan struct{}) (hostileCounts, error) {
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	hi := lo + uintptr(len(mem))
	var c hostileCounts
	var buf []byte
	var sink byte
	for {
		select {
		case <-stop:
			_ = sink
			return c, nil
		default:
		}
		var m Msg
		var err error
		view, read := false, true
		start := time.Now()
		switch op := rng.IntN(10); {
		case op < 4:
			m, err = r.TryNext()
			view = true
		case op < 6:
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rng.IntN(5))*time.Millisecond)
			m, err = r.Next(ctx)
			cancel()
			view = true
		case op < 8:
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rng.IntN(5))*time.Millisecond)
			buf, m, err = r.Recv(ctx, buf)
			cancel()
		case op == 8:
			r.Rewind()
			c.rewinds++
			read = false
		default:
			if !r.Release() {
				c.torn++
			}
			c.releases++
			read = false
		}
		c.maxCall = max(c.maxCall, time.Since(start))
		c.calls++
		switch {
		case !read:
		case err == nil:
			if len(m.Data) > r.SlotSize() {
				return c, fmt.Errorf("message %d of %d bytes in %d-byte slots", m.Seq, len(m.Data), r.SlotSize())
			}
			if view && len(m.Data) > 0 {
				p := uintptr(unsafe.Pointer(&m.Data[0]))
				if p < lo+HeaderSize || p+uintptr(len(m.Data)) > hi {
					return c, fmt.Errorf("view %#x+%d outside the slots %#x-%#x", p, len(m.Data), lo+HeaderSize, hi)
				}
			}
			for _, b := range m.Data {
				sink ^= b
			}
			c.msgs++
		case errors.Is(err, ErrEmpty):
			c.empty++
		case errors.Is(err, ErrCorrupt):
			c.corrupt++
		case errors.Is(err, ErrClosed):
			c.closed++
		case errors.Is(err, context.DeadlineExceeded):
			c.timeouts++
		default:
			return c, fmt.Errorf("unexpected error: %v", err)
		}
	}
}

func hostileDuration(t *testing.T) time.Duration {
	if s := os.Getenv(hostileEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", hostileEnv, err)
		}
		return d
	}
	if testing.Short() {
		return 2 * time.Second
	}
	return 10 * time.Second
}
