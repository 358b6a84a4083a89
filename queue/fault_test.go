package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchboard/queue/queuetest"
)

// TestStorageFailure: a full disk (ENOSPC) or an I/O error at the N-th
// write or fsync fails the publishes in flight with ErrFailed, puts the
// queue in a read-only error state that Info reports, and never
// acknowledges a publish that is not on disk: after a power cut every
// acknowledged message is there, for every N.
func TestStorageFailure(t *testing.T) {
	for _, op := range []queuetest.Op{queuetest.OpWrite, queuetest.OpSync} {
		for _, errno := range []error{syscall.ENOSPC, syscall.EIO} {
			for n := 1; n <= 12; n++ {
				t.Run(fmt.Sprintf("%s-%v-%d", op, errno, n), func(t *testing.T) {
					fsys := queuetest.New().StrictDirs()
					rec := newRecorder()
					m, err := Open(Options{Dir: "/data", FS: fsys, NewSender: rec.sender})
					if err != nil {
						t.Fatal(err)
					}
					if _, err := m.Create(Config{Name: "q"}); err != nil {
						t.Fatal(err)
					}
					q := m.Get("q")
					fsys.Inject(queuetest.Fault{Op: op, N: fsys.Calls(op) + n, Err: errno})
					acked := map[string]bool{}
					var failed error
					for i := range 20 {
						data := fmt.Sprint("m", i)
						a, err := publishWait(q, "q", data, "")
						if err != nil {
							failed = err
							break
						}
						if a.Seq == 0 {
							t.Fatal("ack without a sequence")
						}
						acked[data] = true
					}
					if failed == nil {
						t.Skip("the fault was not reached in 20 publishes")
					}
					if !errors.Is(failed, ErrFailed) || !strings.Contains(failed.Error(), errno.Error()) {
						t.Fatalf("publish error %v, want ErrFailed naming %v", failed, errno)
					}
					if _, err := publishWait(q, "q", "after", ""); !errors.Is(err, ErrFailed) {
						t.Fatalf("publish after the failure: %v", err)
					}
					if inf := q.Info(); inf.Error == "" {
						t.Fatal("Info does not report the failure")
					}
					crashed := fsys.Crash(rand.New(rand.NewPCG(uint64(n), 7)))
					m.Close()
					m2, err := Open(Options{Dir: "/data", FS: crashed, NewSender: rec.sender})
					if err != nil {
						t.Fatal(err)
					}
					defer m2.Close()
					q2 := m2.Get("q")
					if q2 == nil {
						t.Fatal("queue gone after the failure and a power cut")
					}
					if err := q2.Fetch(DefaultConsumer, "all", 100, 50*time.Millisecond, true); err != nil {
						t.Fatal(err)
					}
					got := map[string]bool{}
					for _, s := range rec.waitEnd(t, "all") {
						got[string(s.d.Data)] = true
					}
					for data := range acked {
						if !got[data] {
							t.Fatalf("acknowledged %s lost (%d acked, %d kept)", data, len(acked), len(got))
						}
					}
				})
			}
		}
	}
}

// waitEnd returns the deliveries to to up to its closing status message.
func (r *recorder) waitEnd(t *testing.T, to string) []sent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		var got []sent
		for _, m := range r.msgs {
			if m.to != to {
				continue
			}
			if m.status != 0 {
				r.mu.Unlock()
				return got
			}
			got = append(got, m)
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no end of the fetch to %s (%d so far)", to, len(got))
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPublishLimits(t *testing.T) {
	m := openTest(t, t.TempDir(), newRecorder())
	defer m.Close()
	if _, err := m.Create(Config{Name: "small", MaxMsgSize: 10, MaxMsgs: 2}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("small")
	if _, err := publishWait(q, "small", "01234567890", ""); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	publish(t, q, "small", "a", "")
	publish(t, q, "small", "b", "")
	if _, err := publishWait(q, "small", "c", ""); !errors.Is(err, ErrFull) {
		t.Fatalf("a full work queue: %v", err)
	}
	// Publishes in flight count against the bound too.
	if _, err := m.Create(Config{Name: "burst", MaxMsgs: 5}); err != nil {
		t.Fatal(err)
	}
	b := m.Get("burst")
	results := make(chan error, 50)
	for i := range 50 {
		b.Publish(context.Background(), "burst", nil, []byte(fmt.Sprint(i)), "", time.Time{}, func(_ PubAck, err error) { results <- err })
	}
	stored := 0
	for range 50 {
		if err := <-results; err == nil {
			stored++
		} else if !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
	}
	if inf := b.Info(); stored != 5 || inf.Messages != 5 {
		t.Fatalf("50 publishes at once into max_msgs 5: %d acknowledged, %d held", stored, inf.Messages)
	}
	if _, err := m.Create(Config{Name: "lim", Retention: Limits, MaxMsgs: 3}); err != nil {
		t.Fatal(err)
	}
	l := m.Get("lim")
	for i := range 10 {
		publish(t, l, "lim", fmt.Sprint(i), "")
	}
	if inf := l.Info(); inf.Messages != 3 {
		t.Fatalf("limits queue keeps %d, want 3", inf.Messages)
	}
}
