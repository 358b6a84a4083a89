package switchboard_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"switchboard"
	"switchboard/hub"
)

// TestRegressPublisherCannotForgeDeliveryHeaders: a publisher's own Sb-
// header fields are dropped from deliveries, so it cannot make a consumer
// see another message's sequence (the one the docs say to deduplicate on)
// or a fake redelivery count.
func TestRegressPublisherCannotForgeDeliveryHeaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url, stop := startQueueHub(t, t.TempDir())
	defer stop()
	nc, err := switchboard.Connect(ctx, url, &switchboard.Options{NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.CreateQueue(ctx, switchboard.QueueConfig{Name: "jobs"}); err != nil {
		t.Fatal(err)
	}
	first, err := nc.PublishDurable(ctx, "jobs", []byte("real"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := switchboard.Header{}
	h.Set("Sb-Seq", "1")
	h.Set("Sb-Delivered", "7")
	h.Set("Sb-Queue", "payroll")
	forged, err := nc.PublishDurable(ctx, "jobs", []byte("forged"), &switchboard.DurableOpts{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := nc.Fetch(ctx, "jobs", "default", 2, &switchboard.FetchOpts{Expires: 2 * time.Second})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("fetch: %d %v", len(msgs), err)
	}
	m := msgs[1]
	t.Logf("stored as seq %d (first %d); the consumer sees Seq %d, Delivered %d, Queue %q; header %v", forged.Seq, first.Seq, m.Seq, m.Delivered, m.Queue, m.Header)
	if m.Seq != forged.Seq || m.Delivered != 1 || m.Queue != "jobs" {
		t.Fatalf("the publisher's own Sb- headers win: Seq %d (stored %d), Delivered %d, Queue %q", m.Seq, forged.Seq, m.Delivered, m.Queue)
	}
}

// TestRegressNoRingForStoredSubjects: messages a ring carries bypass the
// hub's publish path, so the hub offers no ring for a subject a durable
// queue stores: every plain publish is stored, and every PublishDurable
// answered, although a shared-memory subscriber listens.
func TestRegressNoRingForStoredSubjects(t *testing.T) {
	if useNATS {
		t.Skip("the hub's")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh, stop := startLocalHub(t, hub.Config{DataDir: t.TempDir()})
	defer stop()
	admin := shmConnect(t, sh.unix, &switchboard.Options{NoSharedMemory: true})
	if _, err := admin.CreateQueue(ctx, switchboard.QueueConfig{Name: "frames"}); err != nil {
		t.Fatal(err)
	}
	watcher := shmConnect(t, sh.unix, nil)
	sub, err := watcher.SubscribeSync("frames")
	if err != nil {
		t.Fatal(err)
	}
	watcher.Flush(ctx)
	pub := shmConnect(t, sh.unix, nil)
	const n = 500
	errs := make(chan error, 1)
	go func() { errs <- readSeq(sub, n+12) }()
	buf := make([]byte, 64)
	for i := range n {
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := pub.Publish("frames", buf); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 12 {
		binary.LittleEndian.PutUint64(buf, uint64(n+i))
		if _, err := pub.PublishDurable(ctx, "frames", buf, nil); err != nil {
			t.Fatalf("durable publish %d: %v", i, err)
		}
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	inf, err := admin.QueueInfo(ctx, "frames")
	if err != nil {
		t.Fatal(err)
	}
	if inf.Messages != n+12 || switchboard.ShmOut(pub) != 0 {
		t.Fatalf("%d publishes on a stored subject: the queue holds %d, %d went through shared memory", n+12, inf.Messages, switchboard.ShmOut(pub))
	}
}

// TestRegressQueueRevokesRings: a queue created on a subject a ring
// already carries makes the hub revoke the ring: once the publisher has
// closed it, every publish goes through the hub and is stored.
func TestRegressQueueRevokesRings(t *testing.T) {
	if useNATS {
		t.Skip("the hub's")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh, stop := startLocalHub(t, hub.Config{DataDir: t.TempDir()})
	defer stop()
	watcher := shmConnect(t, sh.unix, nil)
	sub, err := watcher.SubscribeSync("frames")
	if err != nil {
		t.Fatal(err)
	}
	watcher.Flush(ctx)
	pub := shmConnect(t, sh.unix, nil)
	buf := make([]byte, 64)
	for i := 0; switchboard.ShmOut(pub) == 0; i++ {
		if err := pub.Publish("frames", buf); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(ctx); err != nil {
			t.Fatal(err)
		}
		if i > 100000 {
			t.Fatal("no ring after 100000 messages")
		}
	}
	admin := shmConnect(t, sh.unix, &switchboard.Options{NoSharedMemory: true})
	if _, err := admin.CreateQueue(ctx, switchboard.QueueConfig{Name: "frames"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the publisher to close its revoked ring", func() bool { return switchboard.ShmWriting(pub) == 0 })
	const n = 200
	for range n {
		if err := pub.Publish("frames", buf); err != nil {
			t.Fatal(err)
		}
	}
	pub.Flush(ctx)
	waitFor(t, "the queue to store them", func() bool {
		inf, err := admin.QueueInfo(ctx, "frames")
		return err == nil && inf.Messages == n
	})
}
