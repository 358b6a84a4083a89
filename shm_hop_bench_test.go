package switchboard_test

import (
	"context"
	"testing"
)

// BenchmarkShmHop16B: one goroutine publishes a 16 B message into a ring
// and reads it back with NextView/Release: the CPU work of one hop of a
// round trip, with no other core involved.
func BenchmarkShmHop16B(b *testing.B) {
	sh := startShmHubB(b)
	_, p, sub := ringPair(b, sh.unix, "bench.hop", nil)
	ctx := context.Background()
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
