package shm

// Multi-process tests of the hub's flow: the parent plays the hub, which
// creates an unsealed ring and the cursor blocks; a publisher process opens
// the ring with OpenWriter (sealing it) and tracks the readers' cursors; a
// subscriber process reads with its cursor attached. The helpers run
// through TestHelperProcess (proc_test.go), which dispatches to
// peerHelpers.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// peerHelpers are the helper-process roles of this file.
var peerHelpers = map[string]func(*testing.T){
	"peer-writer": helperPeerWriter,
	"peer-reader": helperPeerReader,
}

// peerSubject is the subject of message seq in the peer tests.
func peerSubject(seq uint64) string { return fmt.Sprintf("peer.%d", seq%7) }

// peerBody is the largest frame body that fits a slot of size bytes with
// any peerSubject and the reply subject "r".
func peerBody(size int) int { return size - FrameSize("peer.0", "r", 0) }

// helperPeerWriter opens the ring inherited as fd 3 with OpenWriter and
// the reader's cursor inherited as fd 4 read-only, tracks the reader
// (blocking if SB_SHM_BLOCK=1), says READY, waits for a line on stdin and
// publishes SB_SHM_TOTAL frames (forever if 0), then closes the ring.
func helperPeerWriter(t *testing.T) {
	total := uint64(envInt(t, "SB_SHM_TOTAL"))
	reg, err := OpenWriter(3)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	cur, err := OpenCursor(4, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	w, err := reg.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddReader(1, cur, os.Getenv("SB_SHM_BLOCK") == "1"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("READY")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	maxBody := peerBody(w.SlotSize())
	for seq := uint64(0); total == 0 || seq < total; seq++ {
		n := msgSize(seq, maxBody)
		subj := peerSubject(seq)
		buf, err := w.Loan(FrameSize(subj, "r", n))
		if err != nil {
			t.Fatal(err)
		}
		body, err := PutFrame(buf, subj, "r", 0)
		if err != nil {
			t.Fatal(err)
		}
		fillMsg(body, seq)
		if err := w.Send(len(buf)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	st := w.Stats()
	fmt.Printf("SUMMARY wakes=%d waits=%d demoted=%d\n", st.Wakes, st.Waits, st.Demoted)
}

// helperPeerReader opens the ring inherited as fd 3 and its cursor as fd
// 4 read-write, attaches it, says READY and reads frames with Next until
// ErrClosed, checking each: subject, reply, contents, and that a view it
// released is intact. It pauses now and then to fall behind.
func helperPeerReader(t *testing.T) {
	r := openInheritedReader(t, 3, 4)
	fmt.Println("READY")
	maxBody := peerBody(r.SlotSize())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var read, missed, torn, bad, next uint64
	for {
		m, err := r.Next(ctx)
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", read, err)
		}
		if m.Seq != next+m.Missed {
			t.Fatalf("message %d after %d with %d missed", m.Seq, next, m.Missed)
		}
		next = m.Seq + 1
		read++
		missed += m.Missed
		f, ferr := ParseFrame(m.Data)
		ok := ferr == nil && f.Subject == peerSubject(m.Seq) && f.Reply == "r" && f.HdrLen == 0 &&
			msgOK(f.Body, m.Seq, maxBody)
		if !r.Release() {
			torn++
		} else if !ok {
			bad++
		}
		if m.Seq%5000 == 4999 {
			time.Sleep(2 * time.Millisecond) // the writer catches up and waits
		}
	}
	r.AttachCursor(nil)
	fmt.Printf("SUMMARY read=%d missed=%d torn=%d bad=%d\n", read, missed, torn, bad)
}

// openInheritedReader opens the ring inherited as fd ring read-only and
// returns a reader at sequence 0 with the cursor inherited as fd cur
// attached; both are closed when the test ends.
func openInheritedReader(t *testing.T, ring, cur int) *Reader {
	t.Helper()
	reg, err := OpenReader(ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	c, err := OpenCursor(cur, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r, err := reg.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	r.Seek(0)
	if err := r.AttachCursor(c); err != nil {
		t.Fatal(err)
	}
	return r
}

// startPeerWriter creates the ring and the reader's cursor as the hub
// would, starts the publisher process on them and waits until it has
// opened and sealed the ring.
func startPeerWriter(t *testing.T, total int, block bool) (*Region, *Cursor, *child) {
	t.Helper()
	const slots, size = 64, 512
	reg, err := CreateUnsealed("sb-proc-peer", slots, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	cur, err := CreateCursor("sb-proc-peer-cursor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cur.Close() })
	env := []string{fmt.Sprint("SB_SHM_TOTAL=", total), "SB_SHM_BLOCK=0"}
	if block {
		env[1] = "SB_SHM_BLOCK=1"
	}
	pub := startChild(t, "publisher", "peer-writer", env, reg.Fd(), cur.Fd())
	pub.expect(t, "READY", 30*time.Second)
	if ok, err := reg.Sealed(); !ok {
		t.Fatalf("the publisher did not seal the ring: %v", err)
	}
	return reg, cur, pub
}

// TestProcPeerBlock: the hub's flow across three processes with a
// blocking subscriber that keeps pausing. The subscriber must get every
// message, intact and in order, none missed or torn, and the publisher
// must never give up on it.
func TestProcPeerBlock(t *testing.T) {
	checkFDs(t)
	const total = 30000
	reg, cur, pub := startPeerWriter(t, total, true)
	sub := startChild(t, "subscriber", "peer-reader", nil, reg.Fd(), cur.Fd())
	sub.expect(t, "READY", 30*time.Second)
	if _, err := pub.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	ps := pub.finish(t, time.Minute)
	ss := sub.finish(t, time.Minute)
	if ss != nil && (ss["read"] != total || ss["missed"] != 0 || ss["torn"] != 0 || ss["bad"] != 0) {
		t.Errorf("blocking subscriber: %v; want %d read, none missed, torn or bad", ss, total)
	}
	if ps != nil && ps["demoted"] != 0 {
		t.Errorf("publisher demoted the subscriber: %v", ps)
	}
	if st := reg.Stats(); st.Messages != total || !st.Closed || st.Waiting {
		t.Errorf("ring header as the hub sees it: %+v", st)
	}
	t.Logf("publisher %v; subscriber %v", ps, ss)
}

// TestProcPeerReclaim: a publisher that tracks the hub's own cursor is
// killed mid-stream; the hub closes the ring through its read-write
// mapping, and its reader drains what was published and gets ErrClosed.
func TestProcPeerReclaim(t *testing.T) {
	checkFDs(t)
	reg, cur, pub := startPeerWriter(t, 0, false)
	r, err := reg.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	r.Seek(0)
	if err := r.AttachCursor(cur); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var read, missed uint64
	for killed := false; ; {
		m, err := r.Next(ctx)
		if errors.Is(err, ErrClosed) && killed {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages (publisher killed: %v): %v", read, killed, err)
		}
		read++
		missed += m.Missed
		if read == 2000 && !killed {
			if err := pub.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			pub.wait(30 * time.Second)
			killed = true
			if err := reg.CloseRing(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A writer killed between a record's word and its store of the message
	// count leaves one complete message the header does not count yet;
	// readers go by the records.
	st := reg.Stats()
	if read+missed != r.Pos() || r.Pos() != st.WriteSeq && r.Pos() != st.WriteSeq+1 {
		t.Errorf("read %d + missed %d, position %d; the publisher published %d", read, missed, r.Pos(), st.WriteSeq)
	}
	if got := cur.Position(); got != r.curPos() {
		t.Errorf("cursor says %d, reader in slot %d", got, r.curPos())
	}
	r.AttachCursor(nil)
	t.Logf("read %d, missed %d of %d before the kill", read, missed, st.WriteSeq)
}
