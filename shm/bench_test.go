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
