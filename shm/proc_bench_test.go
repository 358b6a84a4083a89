package shm

// Cross-process stream benchmarks. The in-process ones (bench_test.go)
// map one memfd twice in one address space, which this package's AMD
// development machine punishes (two linear addresses for one line), and
// run writer and reader as goroutines of one scheduler; these put the
// reader in a helper process (TestHelperProcess), as a subscriber is.
//
// BenchmarkProcStream16B measures this package's ring. BenchmarkProcPacked
// is a layout study, not something the package ships: a byte ring of
// packed records (an 8-byte length word, then the payload, 8-byte
// aligned), several messages to a cache line, to measure what a denser
// layout would gain on the same machine in the same run (see
// docs/BENCHMARKS.md, "Shared memory, fourth pass").

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"switchboard/internal/spinbase"
)

func init() {
	peerHelpers["bench-echo"] = helperBenchEcho
	peerHelpers["bench-reader"] = helperBenchReader
	peerHelpers["packed-reader"] = helperPackedReader
}

// BenchmarkProcStream16B: a tracked writer streams 16 B payloads to one
// blocking, cursor-attached reader in another process, which reads each
// with Next and Release. ns/op is the time per message, from the first
// Loan to the reader's last Release.
func BenchmarkProcStream16B(b *testing.B) {
	for _, g := range []struct {
		name        string
		slots, size int
	}{
		// The hub's default ring: 64 slots of max_payload (1 MiB) plus
		// its frame budget, one 4 KiB page per message.
		{"hub-default", 64, 1<<20 + 1024},
		{"compact", 1024, 48}, // 64-byte slots, contiguous
	} {
		b.Run(g.name, func(b *testing.B) { procStream(b, g.slots, g.size, 16) })
	}
}

func procStream(b *testing.B, slots, size, msg int) {
	reg, err := Create("sb-bench-stream", slots, size)
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	w, err := reg.Writer()
	if err != nil {
		b.Fatal(err)
	}
	cw, err := CreateCursor("sb-bench-cursor")
	if err != nil {
		b.Fatal(err)
	}
	defer cw.Close()
	c := startChild(b, "reader", "bench-reader", []string{"SB_SHM_TOTAL=" + strconv.Itoa(b.N)}, reg.Fd(), cw.Fd())
	c.expect(b, "READY", 30*time.Second)
	if err := w.AddReader(1, cw, true); err != nil {
		b.Fatal(err)
	}
	p := make([]byte, msg)
	ctx := context.Background()
	b.SetBytes(int64(msg))
	b.ResetTimer()
	for i := range b.N {
		buf, err := w.LoanCtx(ctx, len(p))
		if err != nil {
			b.Fatal(err)
		}
		buf[0] = byte(i)
		if err := w.Send(len(p)); err != nil {
			b.Fatal(err)
		}
	}
	c.expect(b, "DONE", time.Minute)
	b.StopTimer()
	reportChild(b, c)
}

// BenchmarkProcPingPong16B: 16 B round trips between this process and an
// echo process over two rings, each reader with its cursor attached and
// tracked by its writer (as the client runs them: a wake-up syscall only
// for a reader that sleeps), next to the raw
// two-process spin ping-pong of internal/spinbase measured in the same
// run: the floor under any shared-memory transport, which bench shm
// reports as baseline_rtt_p50_ns. It reports the medians and their ratio,
// the ring's share of the client API's round trip.
func BenchmarkProcPingPong16B(b *testing.B) { procPingPong(b, 64, 64, 16, false) }

// BenchmarkProcPingPongSpin16B is BenchmarkProcPingPong16B with both
// sides spinning on TakeNext instead of waiting in Next: the ring's own
// round trip, without Next's spin, sleep and Msg machinery, which the
// client does not use either (it takes with TakeNext).
func BenchmarkProcPingPongSpin16B(b *testing.B) { procPingPong(b, 64, 64, 16, true) }

// BenchmarkProcPingPong4MiB is BenchmarkProcPingPong16B with 4 MiB
// messages in rings of 4 slots, zero-copy as bench shm's large round
// trip: each side writes the first 8 bytes of its loan (the echo copies
// those) and sends the whole slot.
func BenchmarkProcPingPong4MiB(b *testing.B) { procPingPong(b, 4, 4<<20+1024, 4<<20, false) }

// procPingPong measures round trips of msg-byte messages through two rings
// of slots slots of size bytes, read with Next or, with spin, by spinning
// on TakeNext; see BenchmarkProcPingPong16B.
func procPingPong(b *testing.B, slots, size, msg int, spin bool) {
	base, err := spinbase.Run(context.Background(), 100_000)
	if err != nil {
		b.Fatal(err)
	}
	ping, err := Create("sb-bench-ping", slots, size)
	if err != nil {
		b.Fatal(err)
	}
	defer ping.Close()
	pong, err := CreateUnsealed("sb-bench-pong", slots, size)
	if err != nil {
		b.Fatal(err)
	}
	defer pong.Close()
	w, err := ping.Writer()
	if err != nil {
		b.Fatal(err)
	}
	r, err := pong.NewReader()
	if err != nil {
		b.Fatal(err)
	}
	echoCur, err := CreateCursor("sb-bench-echo-cursor") // the echo's reader of ping
	if err != nil {
		b.Fatal(err)
	}
	defer echoCur.Close()
	ownCur, err := CreateCursor("sb-bench-own-cursor") // this reader of pong
	if err != nil {
		b.Fatal(err)
	}
	defer ownCur.Close()
	if err := r.AttachCursor(ownCur); err != nil {
		b.Fatal(err)
	}
	defer r.AttachCursor(nil)
	const warm = 2000
	c := startChild(b, "echo", "bench-echo", []string{"SB_SHM_TOTAL=" + strconv.Itoa(warm+b.N), "SB_SHM_ECHO=" + strconv.Itoa(min(msg, 16)), "SB_SHM_SPIN=" + strconv.FormatBool(spin)},
		ping.Fd(), pong.Fd(), echoCur.Fd(), ownCur.Fd())
	c.expect(b, "READY", 30*time.Second)
	if err := w.AddReader(1, echoCur, true); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range warm + b.N {
		t0 := time.Now()
		buf, err := w.Loan(msg)
		if err != nil {
			b.Fatal(err)
		}
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := w.Send(msg); err != nil {
			b.Fatal(err)
		}
		data, err := nextOrSpin(ctx, r, spin)
		if err != nil {
			b.Fatalf("round trip %d: %v\n%s", i, err, c.output())
		}
		got, size := binary.LittleEndian.Uint64(data), len(data)
		ok := r.Release()
		d := time.Since(t0)
		if got != uint64(i) || size != msg || !ok {
			b.Fatalf("round trip %d: echo of %d, %d bytes (intact %v)", i, got, size, ok)
		}
		if i >= warm {
			samples = append(samples, d)
		}
	}
	b.StopTimer()
	c.expect(b, "DONE", time.Minute)
	reportChild(b, c)
	slices.Sort(samples)
	p50 := samples[len(samples)/2]
	b.ReportMetric(float64(p50), "p50-ns")
	b.ReportMetric(float64(base.P50), "baseline-p50-ns")
	b.ReportMetric(float64(p50)/float64(base.P50), "x-baseline")
}

// helperBenchEcho reads SB_SHM_TOTAL messages from the ring inherited as
// fd 3, with its cursor (fd 5) attached, and writes each back into the
// ring inherited as fd 4, which it opens for writing (OpenWriter) and
// whose reader's cursor (fd 6) it tracks, copying its first SB_SHM_ECHO
// bytes into a loan as long as the message; then it says DONE.
func helperBenchEcho(t *testing.T) {
	total, echo := envInt(t, "SB_SHM_TOTAL"), envInt(t, "SB_SHM_ECHO")
	spin := os.Getenv("SB_SHM_SPIN") == "true"
	r := openInheritedReader(t, 3, 5)
	out, err := OpenWriter(4)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := out.Writer()
	if err != nil {
		t.Fatal(err)
	}
	peer, err := OpenCursor(6, false)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := w.AddReader(1, peer, true); err != nil {
		t.Fatal(err)
	}
	fmt.Println("READY")
	ctx := context.Background()
	for range total {
		data, err := nextOrSpin(ctx, r, spin)
		if err != nil {
			t.Fatal(err)
		}
		buf, err := w.Loan(len(data))
		if err != nil {
			t.Fatal(err)
		}
		copy(buf[:echo], data)
		r.Release()
		if err := w.Send(len(buf)); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("DONE")
}

// reportChild reaps a helper and fails the benchmark if it failed.
func reportChild(b *testing.B, c *child) {
	c.wait(30 * time.Second)
	if c.err != nil || c.killed {
		b.Fatalf("%s: %v (killed %v)\n%s", c.name, c.err, c.killed, c.output())
	}
}

// helperBenchReader reads SB_SHM_TOTAL messages from the ring inherited as
// fd 3 from sequence 0, with its cursor (fd 4) attached, and says DONE.
func helperBenchReader(t *testing.T) {
	total := envInt(t, "SB_SHM_TOTAL")
	r := openInheritedReader(t, 3, 4)
	fmt.Println("READY")
	var missed uint64
	ctx := context.Background()
	for range total {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		missed += m.Missed
		r.Release()
	}
	if missed != 0 {
		t.Fatalf("a blocking reader missed %d messages", missed)
	}
	fmt.Println("DONE")
}

// The packed layout of the study: a header line holding the reader's
// position (bytes consumed), then a data area of a power-of-two size.
// A record is a little-endian uint64 w, then the payload, padded to 8
// bytes: w = payload length, 0 = nothing yet, or padRecord|n = skip n
// bytes to the end of the data area. The writer writes the payload, a
// zero word after the record, then w; before a pad record it zeroes the
// word at offset 0, where the reader goes next. So the reader never takes
// a stale record of the previous lap for a new one; it checks the message
// number each payload starts with. It polls the word at its position and
// stores its position every packedPosEvery bytes and when it finds
// nothing.
const (
	packedOffPos   = 0
	packedData     = 64
	packedCap      = 1 << 20
	padRecord      = 1 << 63
	packedPosEvery = 4096
)

// BenchmarkProcPacked streams through the study's packed ring records of
// 24 B (a 16 B payload with no subject), 32 B (the same with 8 more
// bytes of record header, room for a sequence number) and 56 B (48 B, the
// size of this package's frame of a 16 B message with a 15-byte subject).
// Each stands for one 16 B message: MB/s counts those 16 bytes.
func BenchmarkProcPacked(b *testing.B) {
	for _, payload := range []int{16, 24, 48} {
		b.Run(fmt.Sprintf("record-%dB", packedRecord(payload)), func(b *testing.B) { procPacked(b, payload) })
	}
}

func packedRecord(payload int) uint64 { return (8 + uint64(payload) + 7) &^ 7 }

func procPacked(b *testing.B, payload int) {
	fd, err := unix.MemfdCreate("sb-bench-packed", unix.MFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	size := packedData + packedCap
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		b.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	c := startChild(b, "reader", "packed-reader", []string{
		"SB_SHM_TOTAL=" + strconv.Itoa(b.N), "SB_SHM_SIZE=" + strconv.Itoa(payload)}, fd)
	c.expect(b, "READY", 30*time.Second)
	data := mem[packedData:]
	const mask = packedCap - 1
	rec := packedRecord(payload)
	p := make([]byte, payload)
	var pos, limit uint64
	spins := 0
	b.SetBytes(16)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; {
		if pos+rec+8 > limit { // room for the record and the zero after it
			limit = u64(mem, packedOffPos).Load() + packedCap
			if pos+rec+8 > limit {
				// A full ring: spin (the reader runs on another core), but
				// not for ever if the reader died.
				if spins++; spins%(1<<20) == 0 && time.Since(start) > time.Minute {
					b.Fatalf("the reader has not moved for long: at %d of %d\n%s", i, b.N, c.output())
				}
				continue
			}
		}
		off := pos & mask
		if off+rec+8 > packedCap {
			// The reader is past offset 0 of this lap (the room check), and
			// goes there after the pad: no stale record for it there.
			store64(data, 0, 0)
			store64(data, int(off), padRecord|(packedCap-off))
			pos += packedCap - off
			continue
		}
		binary.LittleEndian.PutUint64(p, uint64(i))
		copy(data[off+8:], p)
		store64(data, int(off+rec), 0)
		store64(data, int(off), uint64(payload))
		pos += rec
		i++
	}
	c.expect(b, "DONE", time.Minute)
	b.StopTimer()
	reportChild(b, c)
}

// helperPackedReader reads SB_SHM_TOTAL records of SB_SHM_SIZE bytes from
// the study's packed ring inherited as fd 3, checking each length.
func helperPackedReader(t *testing.T) {
	total, payload := envInt(t, "SB_SHM_TOTAL"), envInt(t, "SB_SHM_SIZE")
	mem, err := unix.Mmap(3, 0, packedData+packedCap, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	data := mem[packedData:]
	const mask = packedCap - 1
	fmt.Println("READY")
	var pos, stored uint64
	for got := 0; got < total; {
		off := pos & mask
		w := u64(data, int(off)).Load()
		switch {
		case w == 0:
			if pos != stored {
				u64(mem, packedOffPos).Store(pos)
				stored = pos
			}
			continue
		case w&padRecord != 0:
			pos += w &^ padRecord
			continue
		case w != uint64(payload):
			t.Fatalf("record at %d says %d bytes, want %d", pos, w, payload)
		case u64(data, int(off)+8).Load() != uint64(got):
			t.Fatalf("record at %d is message %d, want %d", pos, u64(data, int(off)+8).Load(), got)
		}
		pos += packedRecord(payload)
		got++
		if pos-stored >= packedPosEvery {
			store64(mem, packedOffPos, pos)
			stored = pos
		}
	}
	fmt.Println("DONE")
}

// nextOrSpin returns the next message's data: from Next, or, with spin,
// from TakeNext called until it has one (TryNext for what TakeNext leaves
// to it: the first message after the reader landed, a missed one).
func nextOrSpin(ctx context.Context, r *Reader, spin bool) ([]byte, error) {
	if !spin {
		m, err := r.Next(ctx)
		return m.Data, err
	}
	for i := 1; ; i++ {
		if data, ok := r.TakeNext(); ok {
			return data, nil
		}
		if i%64 == 0 {
			if m, err := r.TryNext(); err == nil {
				return m.Data, nil
			} else if err != ErrEmpty {
				return nil, err
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
}
