//go:build linux

package switchboard_test

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"switchboard"
	"switchboard/internal/protocol"
)

// TestShmAttachAfterUnsub: the hub attaches a subscription to a ring
// ("attach") and the subscription ends before the client has handled the
// attach. Conn.shmAttach then finds no subscription, closes the
// descriptors without mapping the cursor, and says DETACHED. The hub must
// release the reader at once: the cursor still holds the position the hub
// wrote at attach, and a publisher blocked on the full ring would wait the
// block timeout (5 s) for it. Before shmAttach said DETACHED, it did, and
// the reader stayed tracked for the connection's life. The raw subscriber
// below does what shmAttach does in that race.
func TestShmAttachAfterUnsub(t *testing.T) {
	sh := startShmHub(t, 1<<16)
	pub := shmConnect(t, sh.unix, nil)
	sub := helloRawShm(t, sh.socketPath)
	t.Cleanup(func() { sub.uc.Close() })
	sub.send("SUB rv.att 5\r\n")
	sub.shm("SUB", map[string]any{"sid": "5", "block": true})
	sub.sync()
	// Publish until the hub attaches the subscriber to the publisher's ring.
	buf := make([]byte, 8)
	attached := false
	var ring uint64
	for i := 0; i < 200 && !attached; i++ {
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := pub.Publish("rv.att", buf); err != nil {
			t.Fatal(err)
		}
		pub.Flush(t.Context())
		for {
			op, m, fds, ok := sub.next(50 * time.Millisecond)
			if !ok {
				break
			}
			closeAll(fds) // what shmAttach does when the subscription is gone
			if op == "attach" {
				attached, ring = true, m.Ring
				break
			}
		}
	}
	if !attached {
		t.Fatal("no attach")
	}
	// The publisher tracks the hub's cursor and the subscriber's.
	waitFor(t, "the publisher to track the subscriber's cursor", func() bool { return switchboard.ShmTracked(pub) == 2 })
	tracked := switchboard.ShmTracked(pub)
	sub.send("UNSUB 5\r\n")
	sub.shm("DETACHED", map[string]any{"ring": ring, "sid": "5"}) // as shmAttach says now
	sub.sync()
	// The subscription is gone from the hub: nothing should hold the
	// publisher back now.
	start := time.Now()
	for i := range 3 * 64 {
		binary.LittleEndian.PutUint64(buf, uint64(1000+i))
		if err := pub.Publish("rv.att", buf); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	now := switchboard.ShmTracked(pub)
	for end := time.Now().Add(2 * time.Second); now != tracked-1 && time.Now().Before(end); now = switchboard.ShmTracked(pub) {
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("tracked before UNSUB %d, after %d; 192 publishes took %v", tracked, now, took)
	if took > 2*time.Second {
		t.Errorf("the publisher was held back %v by the cursor of a subscription that had ended", took)
	}
	if now != tracked-1 {
		t.Errorf("the publisher still tracks %d cursors (was %d before the UNSUB): the ended reader was never released", now, tracked)
	}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// TestShmDetachedNamesReader: a raw client subscribes with sid 5, is
// attached, unsubscribes without saying DETACHED, subscribes again with
// the same sid and is attached again: the hub keeps both ended readers
// (the publisher waits for their cursors). A DETACHED that names one
// reader releases that one, not the other: before DETACHED carried the
// reader id, the hub released whichever of the two it found first.
func TestShmDetachedNamesReader(t *testing.T) {
	sh := startShmHub(t, 1<<16)
	pub := shmConnect(t, sh.unix, nil)
	sub := helloRawShm(t, sh.socketPath)
	t.Cleanup(func() { sub.uc.Close() })
	buf := make([]byte, 8)
	seq := 0
	attach := func() protocol.ShmControl {
		t.Helper()
		sub.send("SUB rv.reuse 5\r\n")
		sub.shm("SUB", map[string]any{"sid": "5", "block": true})
		// No sync: it would drop the attach, which comes at once when
		// the ring exists already (the second time).
		for i := 0; i < 40; i++ { // fewer than the ring's 64 slots: nobody blocks
			for {
				op, m, fds, ok := sub.next(50 * time.Millisecond)
				if !ok {
					break
				}
				closeAll(fds)
				if op == "attach" {
					return m
				}
			}
			binary.LittleEndian.PutUint64(buf, uint64(seq))
			seq++
			if err := pub.Publish("rv.reuse", buf); err != nil {
				t.Fatal(err)
			}
			pub.Flush(t.Context())
		}
		t.Fatal("no attach")
		return protocol.ShmControl{}
	}
	first := attach()
	sub.send("UNSUB 5\r\n")
	sub.sync()
	second := attach()
	sub.send("UNSUB 5\r\n")
	sub.sync()
	if first.Reader == 0 || second.Reader == 0 || first.Reader == second.Reader {
		t.Fatalf("attach messages do not tell the readers apart: %+v, %+v", first, second)
	}
	ended := func() []protocol.ShmReader {
		t.Helper()
		r, err := pub.Request(t.Context(), "$SB.SHM.LIST", nil)
		if err != nil {
			t.Fatal(err)
		}
		var chans []protocol.ShmChannel
		if err := json.Unmarshal(r.Data, &chans); err != nil {
			t.Fatal(err)
		}
		var l []protocol.ShmReader
		for _, c := range chans {
			for _, rd := range c.Readers {
				if rd.Ended {
					l = append(l, rd)
				}
			}
		}
		return l
	}
	if l := ended(); len(l) != 2 {
		t.Fatalf("%d ended readers after two UNSUBs, want 2: %+v", len(l), l)
	}
	// The second first: the hub's map of ended readers tends to hand out
	// the first one first, which the old DETACHED released.
	sub.shm("DETACHED", map[string]any{"ring": second.Ring, "sid": "5", "reader": second.Reader})
	sub.sync()
	if l := ended(); len(l) != 1 || l[0].Reader != first.Reader {
		t.Fatalf("after DETACHED of reader %d, ended readers %+v; want only reader %d", second.Reader, l, first.Reader)
	}
	sub.shm("DETACHED", map[string]any{"ring": first.Ring, "sid": "5", "reader": first.Reader})
	sub.sync()
	if l := ended(); len(l) != 0 {
		t.Fatalf("ended readers left after both DETACHED: %+v", l)
	}
}
