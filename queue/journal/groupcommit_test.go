package journal_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/queue/journal"
	"switchboard/queue/queuetest"
)

// holdSync makes the next fsync of a segment file wait until release is
// closed; held is closed when it starts waiting.
func holdSync(ffs *queuetest.FaultFS) (held, release chan struct{}) {
	held, release = make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	ffs.SetHook(func(op queuetest.Op, name string, n int) error {
		if op == queuetest.OpSync && strings.HasSuffix(name, ".seg") && once.CompareAndSwap(false, true) {
			close(held)
			<-release
		}
		return nil
	})
	return held, release
}

// TestGroupCommit: appends made while the committer is in an fsync all
// go out in the next batch: one write and one fsync for all of them,
// whichever goroutines made them. Nothing is acknowledged before its
// fsync returns.
func TestGroupCommit(t *testing.T) {
	ffs := queuetest.New().StrictDirs()
	j, _ := mustOpen(t, "/q", journal.Options{FS: ffs})
	defer j.Close()
	base := j.Stats()
	writes0 := ffs.Calls(queuetest.OpWrite)
	held, release := holdSync(ffs)

	var acked atomic.Int64
	var wg sync.WaitGroup
	done := func(_ uint64, err error) {
		defer wg.Done()
		if err != nil {
			t.Error(err)
		}
		acked.Add(1)
	}
	wg.Add(1)
	if _, err := j.Append(context.Background(), []byte("first"), done); err != nil {
		t.Fatal(err)
	}
	<-held // the committer is inside the fsync of the first batch
	const goroutines, each = 8, 200
	var appenders sync.WaitGroup
	for g := range goroutines {
		appenders.Add(1)
		go func() {
			defer appenders.Done()
			for i := range each {
				wg.Add(1)
				if _, err := j.Append(context.Background(), fmt.Appendf(nil, "g%d-%d", g, i), done); err != nil {
					t.Error(err)
					wg.Done()
				}
			}
		}()
	}
	appenders.Wait()
	if n := acked.Load(); n != 0 {
		t.Fatalf("%d appends acknowledged while the first fsync is held", n)
	}
	if st := j.Stats(); st.Pending == 0 || st.Appends != base.Appends {
		t.Fatalf("while held: %+v", st)
	}
	close(release)
	wg.Wait()
	st := j.Stats()
	n := uint64(goroutines*each + 1)
	if got := st.Appends - base.Appends; got != n {
		t.Fatalf("appends %d, want %d", got, n)
	}
	if syncs, batches := st.Syncs-base.Syncs, st.Batches-base.Batches; syncs != 2 || batches != 2 {
		t.Fatalf("%d appends took %d fsyncs and %d batches, want 2 and 2", n, syncs, batches)
	}
	if writes := ffs.Calls(queuetest.OpWrite) - writes0; writes != 2 {
		t.Fatalf("%d write calls, want 2", writes)
	}
	if st.MaxBatch != goroutines*each || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("%d appends, %d fsyncs, %d batches (largest %d records)", n, st.Syncs-base.Syncs, st.Batches-base.Batches, st.MaxBatch)
}

// TestMaxPending: past MaxPending bytes, Append waits for room; with a
// context that ends it gives up with the context's error and calls
// nothing.
func TestMaxPending(t *testing.T) {
	ffs := queuetest.New().StrictDirs()
	j, _ := mustOpen(t, "/q", journal.Options{FS: ffs, MaxPending: 1000})
	defer j.Close()
	held, release := holdSync(ffs)
	rec := make([]byte, 200) // 216 bytes encoded
	var wg sync.WaitGroup
	done := func(_ uint64, err error) {
		if err != nil {
			t.Error(err)
		}
		wg.Done()
	}
	for range 4 { // 864 bytes pending
		wg.Add(1)
		if _, err := j.Append(context.Background(), rec, done); err != nil {
			t.Fatal(err)
		}
	}
	<-held
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := j.Append(canceled, rec, func(uint64, error) { t.Error("done called for a refused append") }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append past MaxPending with a canceled context: %v", err)
	}
	// A small record still fits.
	wg.Add(1)
	if _, err := j.Append(canceled, make([]byte, 100), done); err != nil {
		t.Fatalf("Append within MaxPending: %v", err)
	}
	// A blocked Append goes on once the fsync returns.
	result := make(chan error, 1)
	wg.Add(1)
	go func() {
		_, err := j.Append(context.Background(), rec, done)
		result <- err
	}()
	close(release)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if st := j.Stats(); st.Appends != 6 || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCloseWaitsForPending: Close completes every append made before it
// (fsynced), and appends after it fail with ErrClosed without a callback.
func TestCloseWaitsForPending(t *testing.T) {
	ffs := queuetest.New().StrictDirs()
	j, _ := mustOpen(t, "/q", journal.Options{FS: ffs})
	held, release := holdSync(ffs)
	var acked atomic.Int64
	for range 100 {
		if _, err := j.Append(context.Background(), []byte("x"), func(_ uint64, err error) {
			if err == nil {
				acked.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	<-held
	closed := make(chan error, 1)
	go func() { closed <- j.Close() }()
	// Close has set its flag once Append refuses; then let the fsync go.
	// Appends it accepted before complete too.
	accepted := 100
	var refused *atomic.Bool // the callback of the append Close refused
	for {
		var called atomic.Bool
		_, err := j.Append(context.Background(), []byte("late"), func(_ uint64, err error) {
			called.Store(true)
			if err == nil {
				acked.Add(1)
			}
		})
		if errors.Is(err, journal.ErrClosed) {
			refused = &called
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := acked.Load(); got != int64(accepted) {
		t.Fatalf("%d of the %d appends made before Close acknowledged", got, accepted)
	}
	if refused.Load() {
		t.Fatal("the callback of an append refused with ErrClosed was called")
	}
	if _, err := j.Read(1, nil); !errors.Is(err, journal.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := j.RemoveBefore(5); !errors.Is(err, journal.ErrClosed) {
		t.Fatalf("RemoveBefore after Close: %v", err)
	}
	// Everything is on disk: a power cut keeps it all.
	j2, rec := mustOpen(t, "/q", journal.Options{FS: ffs.Crash(nil)})
	j2.Close()
	if rec.Records != uint64(acked.Load()) {
		t.Fatalf("after a power cut: %d records, %d acknowledged", rec.Records, acked.Load())
	}
}

// TestWeakerSyncModes: SyncNever fsyncs nothing until Close; SyncInterval
// fsyncs no more than every interval, and when idle within about one.
func TestWeakerSyncModes(t *testing.T) {
	t.Run("never", func(t *testing.T) {
		ffs := queuetest.New().StrictDirs()
		j, _ := mustOpen(t, "/q", journal.Options{FS: ffs, Sync: journal.SyncNever})
		for i := range 50 {
			if _, err := j.AppendSync(context.Background(), payload(i)); err != nil {
				t.Fatal(err)
			}
		}
		if st := j.Stats(); st.Syncs != 0 || st.Appends != 50 {
			t.Fatalf("before Close: %+v", st)
		}
		// Acknowledged, not synced: a power cut may lose them all.
		j2, rec := mustOpen(t, "/q", journal.Options{FS: ffs.Crash(nil)})
		j2.Close()
		if rec.Records != 0 {
			t.Fatalf("unsynced records survived a strict power cut: %+v", rec)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if st := j.Stats(); st.Syncs != 1 {
			t.Fatalf("after Close: %+v", st)
		}
		j2, rec = mustOpen(t, "/q", journal.Options{FS: ffs.Crash(nil)})
		j2.Close()
		if rec.Records != 50 {
			t.Fatalf("after Close and a power cut: %+v", rec)
		}
	})
	t.Run("interval", func(t *testing.T) {
		ffs := queuetest.New().StrictDirs()
		j, _ := mustOpen(t, "/q", journal.Options{FS: ffs, Sync: journal.SyncInterval, SyncInterval: time.Hour})
		for i := range 50 {
			if _, err := j.AppendSync(context.Background(), payload(i)); err != nil {
				t.Fatal(err)
			}
		}
		if st := j.Stats(); st.Syncs != 0 {
			t.Fatalf("an hour's interval, yet %d fsyncs", st.Syncs)
		}
		j.Close()
		j, _ = mustOpen(t, "/q", journal.Options{FS: ffs, Sync: journal.SyncInterval, SyncInterval: time.Millisecond})
		defer j.Close()
		if _, err := j.AppendSync(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for j.Stats().Syncs == 0 {
			if time.Now().After(deadline) {
				t.Fatal("an idle journal with unsynced data never fsynced")
			}
			time.Sleep(time.Millisecond)
		}
	})
}
