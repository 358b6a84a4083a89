package shm

import (
	"testing"
	"time"
)

// TestPollSlowBatchNotDemoted: a blocking reader reads a full ring and
// spends 60 ms on each message; the writer, which has a message more to
// publish, needs only the first slot back. Reading with TryNext (position
// published at every message) the writer waits about one message's time,
// and so it must with Poll. Poll used to publish the position only when
// the batch ended (16 × 60 ms), past the writer's 500 ms block timeout, so
// the reader was demoted to drop although it freed the slot the writer
// needed 60 ms into the batch; it now publishes it after each message
// while a writer waits. Found in review.
func TestPollSlowBatchNotDemoted(t *testing.T) {
	const slots = 16
	for _, mode := range []string{"trynext", "poll"} {
		t.Run(mode, func(t *testing.T) {
			w, rs := openPair(t, slots, 16, 1)
			r := rs[0]
			rc := cursorPair(t, "sb-poll-slow")
			r.AttachCursor(rc.r)
			if err := w.AddReader(1, rc.w, true); err != nil {
				t.Fatal(err)
			}
			// The margin for a loaded machine: the writer sees the first
			// release after one message, 60 ms and a wake-up.
			w.SetBlockTimeout(500 * time.Millisecond)
			for range slots {
				if err := w.Publish([]byte("m")); err != nil {
					t.Fatal(err)
				}
			}
			pubDone := make(chan time.Duration, 1)
			started := make(chan struct{})
			go func() {
				<-started
				t0 := time.Now()
				w.Publish([]byte("one more")) // needs slot 0 back
				pubDone <- time.Since(t0)
			}()
			work := func() { time.Sleep(60 * time.Millisecond) }
			first := true
			switch mode {
			case "trynext":
				for range slots {
					if _, err := r.TryNext(); err != nil {
						t.Fatal(err)
					}
					if first {
						first = false
						close(started)
					}
					work()
				}
				r.Release()
			case "poll":
				n, err := r.Poll(slots, func([]byte, uint64, uint64) bool {
					if first {
						first = false
						close(started)
					}
					work()
					return true
				})
				if n != slots || err != nil {
					t.Fatalf("Poll = %d, %v", n, err)
				}
			}
			d := <-pubDone
			st := w.Stats()
			t.Logf("%s: the publish that needed the first slot back waited %v; writer %+v", mode, d, st)
			if st.Demoted != 0 {
				t.Errorf("%s: a reader that freed the slot 60 ms into its batch was demoted (the writer waited %v for its position)", mode, d)
			}
		})
	}
}
