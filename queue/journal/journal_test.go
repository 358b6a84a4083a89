package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"switchboard/queue/journal"
	"switchboard/queue/queuetest"
)

// quiet is a logger that drops everything, for tests that reopen a lot.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fataler is the part of testing.TB that *rapid.T also has.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

func mustOpen(t fataler, dir string, opts journal.Options) (*journal.Journal, *journal.Recovery) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	j, rec, err := journal.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return j, rec
}

func payload(i int) []byte {
	return []byte(fmt.Sprintf("record %d %s", i, bytes.Repeat([]byte{byte(i)}, i%37)))
}

func TestAppendReadScanReopen(t *testing.T) {
	for _, fsName := range []string{"os", "fault"} {
		t.Run(fsName, func(t *testing.T) {
			dir := t.TempDir()
			opts := journal.Options{SegmentSize: 4096}
			var ffs *queuetest.FaultFS
			if fsName == "fault" {
				ffs = queuetest.New().StrictDirs()
				opts.FS, dir = ffs, "/q"
			}
			j, rec := mustOpen(t, dir, opts)
			if rec.First != 1 || rec.Last != 0 || rec.Records != 0 {
				t.Fatalf("new journal: %+v", rec)
			}
			ctx := context.Background()
			const n = 200
			for i := 1; i <= n; i++ {
				idx, err := j.AppendSync(ctx, payload(i))
				if err != nil || idx != uint64(i) {
					t.Fatalf("AppendSync %d = %d, %v", i, idx, err)
				}
			}
			check := func(j *journal.Journal, from int) {
				t.Helper()
				if j.First() != 1 || j.Last() != n {
					t.Fatalf("range [%d, %d], want [1, %d]", j.First(), j.Last(), n)
				}
				for i := 1; i <= n; i++ {
					got, err := j.Read(uint64(i), nil)
					if err != nil || !bytes.Equal(got, payload(i)) {
						t.Fatalf("Read %d = %q, %v", i, got, err)
					}
				}
				next := from
				err := j.Scan(uint64(from), func(i uint64, rec []byte) error {
					if i != uint64(next) || !bytes.Equal(rec, payload(next)) {
						return fmt.Errorf("scan: %d %q, want %d", i, rec, next)
					}
					next++
					return nil
				})
				if err != nil || next != n+1 {
					t.Fatalf("Scan: %v, ended at %d", err, next)
				}
				for _, i := range []uint64{0, n + 1, n + 100} {
					if _, err := j.Read(i, nil); !errors.Is(err, journal.ErrNotFound) {
						t.Fatalf("Read %d: %v, want ErrNotFound", i, err)
					}
				}
			}
			check(j, 1)
			st := j.Stats()
			if st.Segments < 3 || st.Appends != n || st.Records != n {
				t.Fatalf("stats %+v", st)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := j.AppendSync(ctx, []byte("x")); !errors.Is(err, journal.ErrClosed) {
				t.Fatalf("append after close: %v", err)
			}
			j, rec = mustOpen(t, dir, opts)
			defer j.Close()
			if rec.Records != n || len(rec.Damage) != 0 || len(rec.Gaps) != 0 {
				t.Fatalf("reopen: %+v", rec)
			}
			check(j, 17)
			if idx, err := j.AppendSync(ctx, []byte("after")); err != nil || idx != n+1 {
				t.Fatalf("append after reopen = %d, %v", idx, err)
			}
			if err := j.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPipelinedDoneOrder(t *testing.T) {
	j, _ := mustOpen(t, "/q", journal.Options{FS: queuetest.New().StrictDirs(), SegmentSize: 8192})
	defer j.Close()
	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	const n = 1000
	for i := 1; i <= n; i++ {
		wg.Add(1)
		idx, err := j.Append(context.Background(), payload(i), func(idx uint64, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("done %d: %v", idx, err)
			}
			mu.Lock()
			got = append(got, idx)
			mu.Unlock()
		})
		if err != nil || idx != uint64(i) {
			t.Fatalf("Append %d = %d, %v", i, idx, err)
		}
	}
	wg.Wait()
	for i, idx := range got {
		if idx != uint64(i+1) {
			t.Fatalf("done #%d got index %d", i, idx)
		}
	}
}
