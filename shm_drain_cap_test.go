package switchboard_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"switchboard"
)

// TestShmDrainCapCounted: a drain reads at most 64 Ki messages from a
// ring; a Drain of a SubscribeSync subscription whose ring holds more
// gets the first 64 Ki in order and has the rest counted in Dropped,
// not lost silently: received + dropped == published.
func TestShmDrainCapCounted(t *testing.T) {
	const subj, total = "drain.cap", 100_000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sh := startShmHub(t, 1<<16)
	pc, sc := shmConnect(t, sh.unix, nil), shmConnect(t, sh.unix, nil)
	sub, err := sc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(0, 0); err != nil {
		t.Fatal(err)
	}
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// 128 Ki slots: the publisher never waits for the subscriber, which
	// reads nothing before its Drain.
	pub, err := pc.NewPublisher(ctx, subj, &switchboard.RingOptions{Slots: 1 << 17, SlotSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscriber to read the ring", func() bool { return switchboard.ShmReading(sub) > 0 })
	for i := range total {
		buf, err := pub.Loan(8)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := pub.Send(8); err != nil {
			t.Fatal(err)
		}
	}
	drained := make(chan error, 1)
	go func() { drained <- sub.Drain(ctx) }()
	got := 0
	for {
		m, err := sub.NextMsg(ctx)
		if errors.Is(err, switchboard.ErrSlowConsumer) {
			continue
		}
		if errors.Is(err, switchboard.ErrBadSubscription) {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		if n := binary.LittleEndian.Uint64(m.Data); n != uint64(got) {
			t.Fatalf("message %d is number %d", got, n)
		}
		got++
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	// The ring held more than the drain's cap: some must be dropped.
	if dropped := sub.Dropped(); got+dropped != total || got == 0 || dropped == 0 {
		t.Fatalf("received %d and dropped %d of %d published", got, dropped, total)
	}
}
