package shm

import (
	"context"
	"testing"
)

// BenchmarkPublish16B is the writer alone, waking (one FUTEX_WAKE syscall)
// after every message.
func BenchmarkPublish16B(b *testing.B) {
	w, _ := openPair(b, 1024, 64, 0)
	p := make([]byte, 16)
	b.SetBytes(16)
	for b.Loop() {
		w.Publish(p)
	}
}

// BenchmarkPublish16BNoWake is the writer alone without the wake-up
// (Commit); the difference to BenchmarkPublish16B is the futex syscall.
func BenchmarkPublish16BNoWake(b *testing.B) {
	w, _ := openPair(b, 1024, 64, 0)
	b.SetBytes(16)
	for b.Loop() {
		buf, _ := w.Loan(16)
		buf[0]++
		w.Commit(16)
	}
}

// BenchmarkPingPong16B is one round trip between two goroutines over two
// rings (Publish, then Next and Release on the other side); ns/op is the
// round-trip time.
func BenchmarkPingPong16B(b *testing.B) {
	ping, pingR := openPair(b, 64, 64, 1)
	pong, pongR := openPair(b, 64, 64, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := pingR[0].Next(ctx)
			if err != nil {
				return
			}
			pong.Publish(m.Data)
			pingR[0].Release()
		}
	}()
	p := make([]byte, 16)
	for b.Loop() {
		ping.Publish(p)
		if _, err := pongR[0].Next(ctx); err != nil {
			b.Fatal(err)
		}
		pongR[0].Release()
	}
	cancel()
	<-done
}

// BenchmarkPublish16BTracked is the writer alone in tracked mode, with one
// reader whose cursor is attached and which is not asleep: Publish checks
// the reader's sleeping flag and skips the FUTEX_WAKE.
func BenchmarkPublish16BTracked(b *testing.B) {
	w, rs := openPair(b, 1024, 64, 1)
	c := cursorPair(b, "sb-bench")
	if err := rs[0].AttachCursor(c.r); err != nil {
		b.Fatal(err)
	}
	if err := w.AddReader(1, c.w, false); err != nil {
		b.Fatal(err)
	}
	p := make([]byte, 16)
	b.SetBytes(16)
	for b.Loop() {
		w.Publish(p)
	}
	if st := w.Stats(); st.Wakes != 1 {
		b.Fatalf("%d wake-ups with nobody asleep, want only AddReader's", st.Wakes-1)
	}
}

// BenchmarkPingPong16BCursor is BenchmarkPingPong16B with tracked writers
// and cursor-attached readers: a writer makes the FUTEX_WAKE syscall only
// when the other side's cursor says it sleeps.
func BenchmarkPingPong16BCursor(b *testing.B) {
	ping, pingR := openPair(b, 64, 64, 1)
	pong, pongR := openPair(b, 64, 64, 1)
	for i, side := range []struct {
		w *Writer
		r *Reader
	}{{ping, pingR[0]}, {pong, pongR[0]}} {
		c := cursorPair(b, "sb-bench")
		if err := side.r.AttachCursor(c.r); err != nil {
			b.Fatal(err)
		}
		if err := side.w.AddReader(uint64(i), c.w, false); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := pingR[0].Next(ctx)
			if err != nil {
				return
			}
			pong.Publish(m.Data)
			pingR[0].Release()
		}
	}()
	p := make([]byte, 16)
	for b.Loop() {
		ping.Publish(p)
		if _, err := pongR[0].Next(ctx); err != nil {
			b.Fatal(err)
		}
		pongR[0].Release()
	}
	b.ReportMetric(float64(ping.Stats().Wakes+pong.Stats().Wakes)/float64(b.N), "wakes/op")
	cancel()
	<-done
}

// BenchmarkStream16BCursor is a one-way stream between two goroutines: a
// tracked writer with one blocking, cursor-attached reader that reads every
// message with Next and Release. ns/op is the time per message.
func BenchmarkStream16BCursor(b *testing.B) {
	w, rs := openPair(b, 64, 64, 1)
	c := cursorPair(b, "sb-bench")
	if err := rs[0].AttachCursor(c.r); err != nil {
		b.Fatal(err)
	}
	if err := w.AddReader(1, c.w, true); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	done := make(chan uint64)
	n := b.N
	go func() {
		var missed uint64
		for range n {
			m, err := rs[0].Next(ctx)
			if err != nil {
				break
			}
			missed += m.Missed
			rs[0].Release()
		}
		done <- missed
	}()
	p := make([]byte, 16)
	b.SetBytes(16)
	b.ResetTimer()
	for range n {
		if err := w.Publish(p); err != nil {
			b.Fatal(err)
		}
	}
	if missed := <-done; missed != 0 {
		b.Fatalf("a blocking reader missed %d messages", missed)
	}
}

// BenchmarkRingHop16B: one goroutine writes a 16 B message (Loan, Commit,
// no wake-up) and reads it (TryNext, Release): the ring's CPU work per
// message on each side, with no other core and no cache line moving.
func BenchmarkRingHop16B(b *testing.B) {
	mem := make([]byte, 1<<20)
	if err := Init(mem, 64, 64); err != nil {
		b.Fatal(err)
	}
	w, err := NewWriter(mem)
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewReader(mem)
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		buf, err := w.Loan(16)
		if err != nil {
			b.Fatal(err)
		}
		buf[0] = 1
		if err := w.Commit(16); err != nil {
			b.Fatal(err)
		}
		m, err := r.TryNext()
		if err != nil || len(m.Data) != 16 {
			b.Fatalf("TryNext: %d bytes, %v", len(m.Data), err)
		}
		r.Release()
	}
}
