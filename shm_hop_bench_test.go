package switchboard_test

import (
	"context"
	"runtime"
	"testing"

	"switchboard"
)

// BenchmarkShmHop16B: one goroutine publishes a 16 B message into a ring
// and reads it back with NextView/Release: the CPU work of one hop of a
// round trip, with no other core involved.
func BenchmarkShmHop16B(b *testing.B) {
	sh := startShmHubB(b)
	p, s := connB(b, sh.unix, nil), connB(b, sh.unix, nil)
	ctx := context.Background()
	sub, _ := s.SubscribeSync("bench.hop")
	s.Flush(ctx)
	p.Publish("bench.hop", []byte("warm"))
	p.Flush(ctx)
	if _, err := sub.NextMsg(ctx); err != nil {
		b.Fatal(err)
	}
	for switchboard.ShmWriting(p) == 0 {
		runtime.Gosched()
	}
	buf := make([]byte, 16)
	for range 1000 {
		p.Publish("bench.hop", buf)
		v, _ := sub.NextView(ctx)
		v.Release()
	}
	b.ResetTimer()
	for range b.N {
		if err := p.Publish("bench.hop", buf); err != nil {
			b.Fatal(err)
		}
		v, err := sub.NextView(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(v.Data) != 16 {
			b.Fatal("bad data", len(v.Data))
		}
		v.Release()
	}
}
