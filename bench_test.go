package switchboard_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"switchboard"
)

// Benchmarks run against the embedded nats-server over TCP. The NatsGo
// variants run the same workload with nats.go, for a ratio in the same run:
//
//	go test -run '^$' -bench . -benchtime=1s .

var payload16 = []byte("0123456789abcdef")

func BenchmarkPublish16B(b *testing.B) {
	ts := startServer(b)
	nc := connect(b, ts.URL(), nil)
	b.SetBytes(int64(len(payload16)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := nc.Publish("bench.pub", payload16); err != nil {
			b.Fatal(err)
		}
	}
	if err := nc.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkNatsGoPublish16B(b *testing.B) {
	ts := startServer(b)
	nc, err := nats.Connect(ts.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	b.SetBytes(int64(len(payload16)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := nc.Publish("bench.pub", payload16); err != nil {
			b.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPubSub16B measures publish-to-callback throughput: one
// publishing and one subscribed connection; the timer stops when the last
// message reached the callback.
func BenchmarkPubSub16B(b *testing.B) {
	ts := startServer(b)
	pub := connect(b, ts.URL(), nil)
	sub := connect(b, ts.URL(), &switchboard.Options{PendingMsgsLimit: -1, PendingBytesLimit: -1})
	var got atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	s, err := sub.Subscribe("bench.ps", func(*switchboard.Msg) {
		if got.Add(1) == n {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	flush(b, sub)
	b.SetBytes(int64(len(payload16)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := pub.Publish("bench.ps", payload16); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		b.Fatalf("received %d of %d (dropped %d)", got.Load(), n, s.Dropped())
	}
}

func BenchmarkNatsGoPubSub16B(b *testing.B) {
	ts := startServer(b)
	pub, err := nats.Connect(ts.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	sub, err := nats.Connect(ts.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	var got atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	s, err := sub.Subscribe("bench.ps", func(*nats.Msg) {
		if got.Add(1) == n {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	s.SetPendingLimits(-1, -1)
	sub.Flush()
	b.SetBytes(int64(len(payload16)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := pub.Publish("bench.ps", payload16); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		b.Fatalf("received %d of %d", got.Load(), n)
	}
}

// BenchmarkRequest measures one request/reply round trip (requester and
// responder on separate connections).
func BenchmarkRequest(b *testing.B) {
	ts := startServer(b)
	srv := connect(b, ts.URL(), nil)
	cli := connect(b, ts.URL(), nil)
	srv.Subscribe("bench.req", func(m *switchboard.Msg) { m.Respond(m.Data) })
	flush(b, srv)
	ctx := context.Background()
	if _, err := cli.Request(ctx, "bench.req", payload16); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := cli.Request(ctx, "bench.req", payload16); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNatsGoRequest(b *testing.B) {
	ts := startServer(b)
	srv, err := nats.Connect(ts.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cli, err := nats.Connect(ts.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	srv.Subscribe("bench.req", func(m *nats.Msg) { m.Respond(m.Data) })
	srv.Flush()
	if _, err := cli.Request("bench.req", payload16, 5*time.Second); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := cli.Request("bench.req", payload16, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPublishNoAlloc checks that Publish does not allocate in steady state.
// The peer is a fake server that discards what it reads, so that the count
// is the client's alone (the embedded nats-server allocates per message).
func TestPublishNoAlloc(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under -race or -cover")
	}
	url := fakeServer(t, func(_ int, c net.Conn, r *bufio.Reader) { io.Copy(io.Discard, r) })
	nc := connect(t, url, nil)
	for range 10000 { // warm the buffers up
		nc.Publish("bench.pub", payload16)
	}
	allocs := testing.AllocsPerRun(10000, func() {
		if err := nc.Publish("bench.pub", payload16); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.01 {
		t.Fatalf("Publish allocates %.3f times per call", allocs)
	}
}
