package switchboard_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"switchboard"
	"switchboard/shm"
)

// TestShmPublishFastPathEdges: Publish on a ring's subject puts a message
// whose frame just fits a slot into the ring (Publish's fast path), and
// one a byte longer on the socket; the subscriber gets both, intact.
func TestShmPublishFastPathEdges(t *testing.T) {
	const subj, slot = "fast.edge", 64
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh := startShmHub(t, 1<<16)
	pc, sc := shmConnect(t, sh.unix, nil), shmConnect(t, sh.unix, nil)
	sub, err := sc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.NewPublisher(ctx, subj, &switchboard.RingOptions{Slots: 64, SlotSize: slot}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscriber to read the ring", func() bool { return switchboard.ShmReading(sub) > 0 })
	fits := switchboard.ShmSlotSize(pc, subj) - shm.FrameSize(subj, "", 0)
	for i, n := range []int{fits, fits + 1} {
		before := switchboard.ShmOut(pc)
		if err := pc.Publish(subj, bytes.Repeat([]byte{byte('a' + i)}, n)); err != nil {
			t.Fatal(err)
		}
		if err := pc.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		viaRing := switchboard.ShmOut(pc) > before
		if want := n == fits; viaRing != want {
			t.Fatalf("%d bytes: through the ring %v, want %v", n, viaRing, want)
		}
		m, err := sub.NextMsg(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Data, bytes.Repeat([]byte{byte('a' + i)}, n)) {
			t.Fatalf("%d bytes published, got %d: %q", n, len(m.Data), m.Data)
		}
	}
}
