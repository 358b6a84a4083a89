package switchboard_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"switchboard"
	"switchboard/hub"
)

// startQueueHub runs a hub with durable queues under dir and returns its
// unix URL and a function that stops it.
func startQueueHub(t testing.TB, dir string) (string, func()) {
	t.Helper()
	if useNATS {
		t.Skip("durable queues are the hub's")
	}
	sh, stop := startLocalHub(t, hub.Config{DataDir: dir})
	return sh.unix, stop
}

func TestDurableQueueClientAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	url, stop := startQueueHub(t, dir)
	nc, err := switchboard.Connect(ctx, url, &switchboard.Options{NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.CreateQueue(ctx, switchboard.QueueConfig{Name: "backup"}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.CreateQueue(ctx, switchboard.QueueConfig{Name: "backup"}); !errors.Is(err, switchboard.ErrQueueExists) {
		t.Fatalf("create twice: %v", err)
	}
	if _, err := nc.QueueInfo(ctx, "nope"); !errors.Is(err, switchboard.ErrQueueNotFound) {
		t.Fatalf("info of a missing queue: %v", err)
	}
	a, err := nc.PublishDurable(ctx, "backup", []byte("job 1"), &switchboard.DurableOpts{MsgID: "j1"})
	if err != nil || a.Queue != "backup" || a.Duplicate {
		t.Fatalf("publish: %+v %v", a, err)
	}
	if b, err := nc.PublishDurable(ctx, "backup", []byte("job 1"), &switchboard.DurableOpts{MsgID: "j1"}); err != nil || !b.Duplicate || b.Seq != a.Seq {
		t.Fatalf("duplicate: %+v %v", b, err)
	}
	var futures []*switchboard.AckFuture
	for i := 2; i <= 100; i++ {
		f, err := nc.PublishDurableAsync("backup", fmt.Appendf(nil, "job %d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	last := a.Seq
	for _, f := range futures {
		a, err := f.Wait(ctx)
		if err != nil || a.Seq <= last {
			t.Fatalf("async ack %+v %v after seq %d", a, err, last)
		}
		last = a.Seq
	}
	msgs, err := nc.Fetch(ctx, "backup", "default", 10, nil)
	if err != nil || len(msgs) != 10 {
		t.Fatalf("fetch: %d messages, %v", len(msgs), err)
	}
	if string(msgs[0].Data) != "job 1" || msgs[0].Subject != "backup" || msgs[0].Delivered != 1 || msgs[0].Seq != a.Seq {
		t.Fatalf("first message %+v", msgs[0])
	}
	for _, m := range msgs[:9] {
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := msgs[0].Ack(ctx); !errors.Is(err, switchboard.ErrStaleDelivery) {
		t.Fatalf("second ack: %v", err)
	}
	// The hub restarts: the unacked message is delivered again at once
	// (its delivery died with the hub), the acked ones never.
	nc.Close()
	stop()
	url, _ = startQueueHub(t, dir)
	nc2, err := switchboard.Connect(ctx, url, &switchboard.Options{NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	inf, err := nc2.QueueInfo(ctx, "backup")
	if err != nil || inf.Messages != 91 {
		t.Fatalf("after restart: %+v %v", inf, err)
	}
	got := map[string]int{}
	for len(got) < 91 {
		msgs, err := nc2.Fetch(ctx, "backup", "default", 50, &switchboard.FetchOpts{Expires: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got[string(m.Data)]++
			if err := m.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 1; i <= 9; i++ {
		if got[fmt.Sprint("job ", i)] != 0 {
			t.Fatalf("acked job %d delivered again", i)
		}
	}
	if msgs, err := nc2.Fetch(ctx, "backup", "default", 1, &switchboard.FetchOpts{NoWait: true}); err != nil || len(msgs) != 0 {
		t.Fatalf("empty queue: %d messages, %v", len(msgs), err)
	}
}

// BenchmarkDurablePublish8x256 is 8 connections each keeping 256 durable
// publishes of 128 B in flight against an in-process hub (fsync on every
// group commit); ns/op is per acknowledged message.
func BenchmarkDurablePublish8x256(b *testing.B) {
	ctx := context.Background()
	url, _ := startQueueHub(b, b.TempDir())
	admin, err := switchboard.Connect(ctx, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.CreateQueue(ctx, switchboard.QueueConfig{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	const pubs, window = 8, 256
	data := make([]byte, 128)
	per := b.N/pubs + 1
	errs := make(chan error, pubs)
	b.ResetTimer()
	for range pubs {
		go func() {
			nc, err := switchboard.Connect(ctx, url, nil)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			var fs []*switchboard.AckFuture
			for i := range per {
				f, err := nc.PublishDurableAsync("bench", data, nil)
				if err != nil {
					errs <- err
					return
				}
				fs = append(fs, f)
				if len(fs) == window || i == per-1 {
					for _, f := range fs[:len(fs)/2+1] {
						if _, err := f.Wait(ctx); err != nil {
							errs <- err
							return
						}
					}
					fs = append(fs[:0], fs[len(fs)/2+1:]...)
				}
			}
			for _, f := range fs {
				if _, err := f.Wait(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range pubs {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(pubs*per)/b.Elapsed().Seconds(), "msgs/s")
}

func TestDecodePubAck(t *testing.T) {
	for _, c := range []struct {
		in   string
		want switchboard.PubAck
		err  bool
	}{
		{`{"queue":"jobs","seq":12,"duplicate":false}`, switchboard.PubAck{Queue: "jobs", Seq: 12}, false},
		{`{"queue":"a-b","seq":18446744073709551615,"duplicate":true}`, switchboard.PubAck{Queue: "a-b", Seq: 1<<64 - 1, Duplicate: true}, false},
		{`{"seq":3,"queue":"q","duplicate":false}`, switchboard.PubAck{Queue: "q", Seq: 3}, false},
		{`{"queue":"q","seq":-1,"duplicate":false}`, switchboard.PubAck{}, true},
		{`{"error":"queue: full","code":"full","queue":"q"}`, switchboard.PubAck{}, true},
	} {
		got, err := switchboard.DecodePubAck([]byte(c.in))
		if (err != nil) != c.err || err == nil && *got != c.want {
			t.Errorf("%s: %+v, %v", c.in, got, err)
		}
	}
}
