package switchboard_test

import (
	"context"
	"runtime"
	"testing"

	"switchboard"
)

// BenchmarkShmRoundTrip16B: 16 B ping-pong between two Conns on the unix
// socket of an in-process hub, through rings (Publish, SubscribeSync,
// NextMsg); the echo runs on its own goroutine.
func BenchmarkShmRoundTrip16B(b *testing.B) {
	benchRoundTrip(b, nil, false)
}

// BenchmarkSocketRoundTrip16B is the same over the socket.
func BenchmarkSocketRoundTrip16B(b *testing.B) {
	benchRoundTrip(b, &switchboard.Options{NoSharedMemory: true}, false)
}

// benchRoundTrip measures 16 B request/response round trips between two
// Conns; with view both sides read with NextView (in place), else NextMsg.
func benchRoundTrip(b *testing.B, o *switchboard.Options, view bool) {
	sh := startShmHubB(b)
	a, e := connB(b, sh.unix, o), connB(b, sh.unix, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ping, _ := e.SubscribeSync("bench.ping")
	pong, _ := a.SubscribeSync("bench.pong")
	e.Flush(ctx)
	a.Flush(ctx)
	// next reads one message from s and passes its data to use.
	next := func(s *switchboard.Subscription, use func([]byte)) error {
		if !view {
			m, err := s.NextMsg(ctx)
			if err == nil {
				use(m.Data)
			}
			return err
		}
		v, err := s.NextView(ctx)
		if err == nil {
			use(v.Data)
			v.Release()
		}
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for next(ping, func(d []byte) { e.Publish("bench.pong", d) }) == nil {
		}
	}()
	buf := make([]byte, 16)
	rt := func() {
		a.Publish("bench.ping", buf)
		if err := next(pong, func([]byte) {}); err != nil {
			b.Fatal(err)
		}
	}
	for range 2000 { // warm up: the rings are handed out
		rt()
	}
	b.ResetTimer()
	for range b.N {
		rt()
	}
	b.StopTimer()
	cancel()
	<-done
}

// BenchmarkShmStream16B: one-way 16 B stream into a callback
// subscription, through a ring (blocking subscriber: nothing is lost).
func BenchmarkShmStream16B(b *testing.B) {
	benchStream(b, &switchboard.Options{})
}

// BenchmarkSocketStream16B is the same over the socket.
func BenchmarkSocketStream16B(b *testing.B) {
	benchStream(b, &switchboard.Options{NoSharedMemory: true})
}

func benchStream(b *testing.B, o *switchboard.Options) {
	sh := startShmHubB(b)
	o.PendingMsgsLimit, o.PendingBytesLimit = 1<<24, 1<<30
	p, s := connB(b, sh.unix, &switchboard.Options{NoSharedMemory: o.NoSharedMemory}), connB(b, sh.unix, o)
	ctx := context.Background()
	got := make(chan struct{})
	n, want := 0, 0
	sub, _ := s.Subscribe("bench.stream", func(*switchboard.Msg) {
		n++
		if n == want {
			close(got)
		}
	})
	s.Flush(ctx)
	p.Publish("bench.stream", []byte("warm"))
	p.Flush(ctx)
	for switchboard.ShmWriting(p) == 0 && !o.NoSharedMemory {
		runtime.Gosched()
	}
	want = b.N + 1
	buf := make([]byte, 16)
	b.ResetTimer()
	for range b.N {
		if err := p.Publish("bench.stream", buf); err != nil {
			b.Fatal(err)
		}
	}
	p.Flush(ctx)
	<-got
	b.StopTimer()
	sub.Unsubscribe()
}

// BenchmarkShmStreamView16B: one-way 16 B stream read in place with
// NextView.
func BenchmarkShmStreamView16B(b *testing.B) {
	p, sub := streamPair(b, "bench.view")
	ctx := context.Background()
	done := make(chan int)
	go func() {
		n := 0
		for n < b.N {
			v, err := sub.NextView(ctx)
			if err != nil {
				break
			}
			v.Release()
			n++
		}
		done <- n
	}()
	buf := make([]byte, 16)
	b.ResetTimer()
	for range b.N {
		if err := p.Publish("bench.view", buf); err != nil {
			b.Fatal(err)
		}
	}
	if n := <-done; n != b.N {
		b.Fatalf("read %d of %d", n, b.N)
	}
}

// BenchmarkShmRoundTripView16B is BenchmarkShmRoundTrip16B read in place.
func BenchmarkShmRoundTripView16B(b *testing.B) { benchRoundTrip(b, nil, true) }

// BenchmarkShmPublishOnly16B is the publisher's side alone: Publish into a
// ring whose one subscriber never reads (it drops, so the ring never
// blocks the publisher). ns/op is the client's cost per message on top of
// the ring's (compare shm's BenchmarkPublish16BTracked).
func BenchmarkShmPublishOnly16B(b *testing.B) {
	sh := startShmHubB(b)
	p, s := connB(b, sh.unix, nil), connB(b, sh.unix, &switchboard.Options{ShmDrop: true})
	ctx := context.Background()
	sub, _ := s.SubscribeSync("bench.only")
	s.Flush(ctx)
	p.Publish("bench.only", []byte("warm"))
	p.Flush(ctx)
	if _, err := sub.NextMsg(ctx); err != nil {
		b.Fatal(err)
	}
	for switchboard.ShmWriting(p) == 0 {
		runtime.Gosched()
	}
	buf := make([]byte, 16)
	b.ResetTimer()
	for range b.N {
		if err := p.Publish("bench.only", buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShmStreamBatch16B: one-way 16 B stream read in place with
// NextViews, up to 256 messages a call, as bench shm's stream: the
// publisher and the reader are goroutines of one process here, so one CPU
// profile shows both sides.
func BenchmarkShmStreamBatch16B(b *testing.B) {
	p, sub := streamPair(b, "bench.batch")
	ctx := context.Background()
	done := make(chan int)
	go func() {
		n := 0
		count := func(*switchboard.View) { n++ }
		for n < b.N {
			if _, err := sub.NextViews(ctx, 256, count); err != nil {
				break
			}
		}
		done <- n
	}()
	buf := make([]byte, 16)
	b.ResetTimer()
	for range b.N {
		if err := p.Publish("bench.batch", buf); err != nil {
			b.Fatal(err)
		}
	}
	if n := <-done; n != b.N {
		b.Fatalf("read %d of %d", n, b.N)
	}
}

// streamPair connects a publisher and a SubscribeSync subscriber of subj
// to a new hub, and returns once a message went through and the
// publisher has its ring.
func streamPair(b *testing.B, subj string) (*switchboard.Conn, *switchboard.Subscription) {
	sh := startShmHubB(b)
	p, s := connB(b, sh.unix, nil), connB(b, sh.unix, nil)
	ctx := context.Background()
	sub, _ := s.SubscribeSync(subj)
	s.Flush(ctx)
	p.Publish(subj, []byte("warm"))
	p.Flush(ctx)
	if v, err := sub.NextView(ctx); err != nil {
		b.Fatal(err)
	} else {
		v.Release()
	}
	for switchboard.ShmWriting(p) == 0 {
		runtime.Gosched()
	}
	return p, sub
}
