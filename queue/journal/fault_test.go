package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"

	"switchboard/queue/journal"
	"switchboard/queue/queuetest"
)

// faultRun is the outcome of one workload run with a fault injected.
type faultRun struct {
	appended map[uint64][]byte // every append that got an index
	acked    map[uint64]bool   // done(nil)
	floor    uint64            // First after the last RemoveBefore that returned nil
	asked    uint64            // largest RemoveBefore argument: below it records may be gone
	openErr  error
	j        *journal.Journal
}

// faultWorkload opens a journal on ffs and runs 4 goroutines of pipelined
// appends (windows of 8), one of them calling RemoveBefore now and then,
// until
// every append completed. It checks, per append, that no done(nil) comes
// after a done(err) (dones run in index order on one goroutine) and that
// every error after the failure wraps ErrFailed.
func faultWorkload(t *testing.T, ffs *queuetest.FaultFS) *faultRun {
	t.Helper()
	r := &faultRun{appended: map[uint64][]byte{}, acked: map[uint64]bool{}}
	j, _, err := journal.Open("/q", journal.Options{FS: ffs, SegmentSize: journal.MinSegmentSize, Logger: quiet})
	if err != nil {
		r.openErr = err
		return r
	}
	r.j = j
	var (
		mu       sync.Mutex
		sawErr   bool
		wg       sync.WaitGroup
		lastDone uint64
	)
	done := func(p []byte, sem chan struct{}) func(uint64, error) {
		return func(i uint64, err error) {
			defer func() { <-sem }()
			mu.Lock()
			defer mu.Unlock()
			if i <= lastDone {
				t.Errorf("done for %d after done for %d", i, lastDone)
			}
			lastDone = i
			switch {
			case err == nil && sawErr:
				t.Errorf("done(%d, nil) after a failed append", i)
			case err == nil:
				r.acked[i] = true
			case !errors.Is(err, journal.ErrFailed):
				t.Errorf("done(%d): %v does not wrap ErrFailed", i, err)
			default:
				sawErr = true
			}
		}
	}
	removeBefore := func(before uint64) {
		mu.Lock()
		r.asked = max(r.asked, before)
		mu.Unlock()
		if err := j.RemoveBefore(before); err != nil {
			if !errors.Is(err, journal.ErrFailed) {
				t.Errorf("RemoveBefore: %v does not wrap ErrFailed", err)
			}
			return
		}
		mu.Lock()
		r.floor = max(r.floor, j.First())
		mu.Unlock()
	}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem := make(chan struct{}, 8)
			for i := range 100 {
				p := []byte(fmt.Sprintf("w%d-%03d-%s", w, i, bytes.Repeat([]byte{'x'}, (w*37+i*11)%150)))
				sem <- struct{}{}
				idx, err := j.Append(context.Background(), p, done(p, sem))
				if err != nil {
					<-sem
					if !errors.Is(err, journal.ErrFailed) {
						t.Errorf("Append: %v does not wrap ErrFailed", err)
					}
					continue
				}
				mu.Lock()
				r.appended[idx] = p
				mu.Unlock()
				if w == 0 && i%10 == 9 {
					removeBefore(j.Last() / 2)
				}
			}
			for range cap(sem) {
				sem <- struct{}{}
			}
		}()
	}
	wg.Wait()
	removeBefore(j.Last()) // all but the newest segment
	return r
}

// checkKept reopens a journal on ffs and checks that every acknowledged
// record at or above the removal floor is there, and that nothing is
// there that was not appended under its index.
func checkKept(t *testing.T, what string, ffs *queuetest.FaultFS, r *faultRun) {
	t.Helper()
	j, _, err := journal.Open("/q", journal.Options{FS: ffs, SegmentSize: journal.MinSegmentSize, Logger: quiet})
	if err != nil {
		t.Fatalf("%s: reopen: %v", what, err)
	}
	defer j.Close()
	if j.First() < r.floor {
		t.Fatalf("%s: First %d below the removal floor %d", what, j.First(), r.floor)
	}
	seen := map[uint64]bool{}
	err = j.Scan(0, func(i uint64, rec []byte) error {
		if p, ok := r.appended[i]; !ok || !bytes.Equal(p, rec) {
			return fmt.Errorf("record %d %q was never appended", i, rec)
		}
		seen[i] = true
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for i := range r.acked {
		if !seen[i] && (i >= j.First() || i >= r.asked) {
			t.Fatalf("%s: acknowledged record %d lost (kept [%d, %d], RemoveBefore asked up to %d)", what, i, j.First(), j.Last(), r.asked)
		}
	}
	// The reopened journal takes appends again, after every index used.
	idx, err := j.AppendSync(context.Background(), []byte("after"))
	if err != nil {
		t.Fatalf("%s: append after reopen: %v", what, err)
	}
	for i := range r.acked {
		if i >= idx {
			t.Fatalf("%s: new append got index %d, acknowledged %d exists", what, idx, i)
		}
	}
}

// TestFaultInjection fails the N-th write, fsync, file creation, rename,
// removal or directory fsync with EIO or ENOSPC (and writes short), for
// every N a fault-free run reaches (every third past 24). After the
// fault: no done(nil), Err set, appends and RemoveBefore fail with an
// error wrapping ErrFailed and the cause, reads still work; and no
// acknowledged record is lost when the journal is reopened as it is, or
// after a power cut with only synced data, or after one with torn
// writes.
func TestFaultInjection(t *testing.T) {
	ops := []queuetest.Op{queuetest.OpWrite, queuetest.OpSync, queuetest.OpCreate,
		queuetest.OpRename, queuetest.OpRemove, queuetest.OpSyncDir}
	// A fault-free run says how many calls of each kind there are.
	clean := queuetest.New().StrictDirs()
	r := faultWorkload(t, clean)
	if err := r.j.Close(); err != nil {
		t.Fatal(err)
	}
	if len(r.acked) != 400 {
		t.Fatalf("fault-free run acknowledged %d of 400", len(r.acked))
	}
	runs, hit := 0, 0
	for _, op := range ops {
		total := clean.Calls(op)
		if total < 3 {
			t.Fatalf("a fault-free run makes only %d %s calls", total, op)
		}
		for n := 1; n <= total+1; n++ {
			if n > 24 && n%3 != 0 {
				continue
			}
			for variant := range 3 {
				fault := queuetest.Fault{Op: op, N: n, Err: syscall.EIO}
				switch variant {
				case 1:
					fault.Err = syscall.ENOSPC
				case 2:
					if op != queuetest.OpWrite {
						continue
					}
					fault.Short = true
				}
				name := fmt.Sprintf("%s#%d/%v/short=%v", op, n, fault.Err, fault.Short)
				runs++
				if faultCase(t, name, fault, uint64(n*7+variant)) {
					hit++
				}
				if t.Failed() {
					return
				}
			}
		}
	}
	t.Logf("%d runs, %d hit the fault after Open", runs, hit)
	if hit < runs/2 {
		t.Fatalf("only %d of %d runs hit their fault", hit, runs)
	}
}

// faultCase runs the workload with one fault and checks the failure rule
// and the recovery; it says whether the fault hit a running journal.
func faultCase(t *testing.T, name string, fault queuetest.Fault, seed uint64) bool {
	t.Helper()
	ffs := queuetest.New().StrictDirs()
	ffs.Inject(fault)
	r := faultWorkload(t, ffs)
	hitRunning := false
	if r.openErr != nil {
		if !errors.Is(r.openErr, fault.Err) {
			t.Fatalf("%s: Open: %v does not wrap the injected error", name, r.openErr)
		}
	} else {
		j := r.j
		err := j.Err()
		if ffs.Calls(fault.Op) >= fault.N {
			hitRunning = true
			if !errors.Is(err, journal.ErrFailed) || !errors.Is(err, fault.Err) {
				t.Fatalf("%s: fault hit, Err() = %v", name, err)
			}
			if _, err := j.Append(context.Background(), []byte("late"), nil); !errors.Is(err, journal.ErrFailed) || !errors.Is(err, fault.Err) {
				t.Fatalf("%s: append after failure: %v", name, err)
			}
			if err := j.RemoveBefore(j.Last()); !errors.Is(err, journal.ErrFailed) {
				t.Fatalf("%s: RemoveBefore after failure: %v", name, err)
			}
			// Reads still work.
			for i := range r.acked {
				if i < j.First() {
					continue
				}
				if got, err := j.Read(i, nil); err != nil || !bytes.Equal(got, r.appended[i]) {
					t.Fatalf("%s: Read %d after failure = %q, %v", name, i, got, err)
				}
			}
			if st := j.Stats(); st.Appends != uint64(len(r.acked)) {
				t.Fatalf("%s: Stats.Appends %d, acknowledged %d", name, st.Appends, len(r.acked))
			}
		} else if err != nil {
			t.Fatalf("%s: fault not reached, Err() = %v", name, err)
		}
		if cerr := j.Close(); !errors.Is(cerr, journal.ErrFailed) && err != nil {
			t.Fatalf("%s: Close after failure: %v", name, cerr)
		}
	}
	ffs.ClearFaults()
	tornFS := ffs.Crash(rand.New(rand.NewPCG(seed, 1)))
	syncedFS := ffs.Crash(nil)
	checkKept(t, name+" reopened", ffs, r)
	checkKept(t, name+" after a power cut", syncedFS, r)
	checkKept(t, name+" after a power cut with torn writes", tornFS, r)
	return hitRunning
}
