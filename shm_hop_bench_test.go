package switchboard_test

import (
	"context"
	"testing"

	"switchboard"
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

// BenchmarkShmBatch16B: one goroutine publishes 32 16 B messages into a
// ring and reads them back with one NextViews call: the CPU work per
// message of a stream read in batches, with no other core involved. ns/op
// is per message.
func BenchmarkShmBatch16B(b *testing.B) {
	sh := startShmHubB(b)
	_, p, sub := ringPair(b, sh.unix, "bench.batch", nil)
	ctx := context.Background()
	buf := make([]byte, 16)
	const batch = 32
	got := 0
	fn := func(v *switchboard.View) { got += len(v.Data) }
	round := func() {
		for range batch {
			if err := p.Publish("bench.batch", buf); err != nil {
				b.Fatal(err)
			}
		}
		for n := 0; n < batch; {
			k, err := sub.NextViews(ctx, batch, fn)
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
	}
	for range 100 {
		round()
	}
	b.ResetTimer()
	for range b.N / batch {
		round()
	}
	b.StopTimer()
	if got != 16*batch*(100+b.N/batch) {
		b.Fatalf("read %d bytes", got)
	}
}
