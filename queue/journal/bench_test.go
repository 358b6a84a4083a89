package journal_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/queue/journal"
)

// The benchmarks run on the real file system under b.TempDir(): run them
// where that is a disk, not tmpfs (docs/storage.md has the figures and
// the command).

// benchAppend appends b.N records of 128 bytes with SyncAlways from
// appenders goroutines, each keeping window appends in flight, and
// reports the rate and how many records shared an fsync.
func benchAppend(b *testing.B, appenders, window int) {
	j, _ := mustOpen(b, b.TempDir(), journal.Options{})
	defer j.Close()
	rec := make([]byte, 128)
	b.SetBytes(int64(len(rec)))
	st0 := j.Stats()
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for a := range appenders {
		n := b.N / appenders
		if a < b.N%appenders {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem := make(chan struct{}, window)
			release := func(_ uint64, err error) {
				if err != nil {
					b.Error(err)
				}
				<-sem
			}
			for range n {
				sem <- struct{}{}
				if _, err := j.Append(context.Background(), rec, release); err != nil {
					b.Error(err)
					return
				}
			}
			for range window {
				sem <- struct{}{}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	st := j.Stats()
	syncs := float64(st.Syncs - st0.Syncs)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(syncs/elapsed.Seconds(), "syncs/s")
	if syncs > 0 {
		b.ReportMetric(float64(b.N)/syncs, "msgs/sync")
	}
}

// BenchmarkAppend: 128-byte records, SyncAlways, on the real disk.
// window1 is one append at a time (one fsync each: the latency floor);
// the others keep 256 appends in flight per appender.
func BenchmarkAppend(b *testing.B) {
	b.Run("appenders=1/window=1", func(b *testing.B) { benchAppend(b, 1, 1) })
	b.Run("appenders=1/window=256", func(b *testing.B) { benchAppend(b, 1, 256) })
	b.Run("appenders=8/window=256", func(b *testing.B) { benchAppend(b, 8, 256) })
}

// BenchmarkRecover1GiB builds a journal of 1 GiB of 128-byte records
// (about 7.5 million, in 64 MiB segments) and times Open: reading every
// segment, checking every CRC, rebuilding the index. "warm" has the files
// in the page cache (just written); "cold" evicts them first
// (posix_fadvise DONTNEED). It runs only when -bench names it: building
// the journal takes a while and a GiB of disk.
func BenchmarkRecover1GiB(b *testing.B) {
	if !strings.Contains(flag.Lookup("test.bench").Value.String(), "Recover1GiB") {
		b.Skip("run with -bench Recover1GiB")
	}
	dir := b.TempDir()
	j, _ := mustOpen(b, dir, journal.Options{Sync: journal.SyncNever, MaxPending: 64 << 20})
	rec := make([]byte, 128)
	built := time.Now()
	var n int
	for j.Stats().Bytes < 1<<30 {
		for range 100_000 {
			if _, err := j.Append(context.Background(), rec, nil); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if _, err := j.AppendSync(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d records in %v", n, time.Since(built).Round(time.Millisecond))
	for _, cache := range []string{"warm", "cold"} {
		b.Run(cache, func(b *testing.B) {
			var rec *journal.Recovery
			var total time.Duration
			for range b.N {
				if cache == "cold" {
					b.StopTimer()
					segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
					for _, s := range segs {
						if err := dropCache(s); err != nil {
							b.Skip(err)
						}
					}
					b.StartTimer()
				}
				start := time.Now()
				var j *journal.Journal
				j, rec = mustOpen(b, dir, journal.Options{})
				total += time.Since(start)
				b.StopTimer()
				j.Close()
				b.StartTimer()
			}
			if rec.Records < 7_000_000 || len(rec.Damage) != 0 {
				b.Fatalf("recovered %+v", rec)
			}
			var size int64
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			for _, s := range segs {
				fi, _ := os.Stat(s)
				size += fi.Size()
			}
			sec := total.Seconds() / float64(b.N)
			b.ReportMetric(sec, "s/open")
			b.ReportMetric(float64(size)/(1<<20)/sec, "MiB/s")
			b.ReportMetric(float64(rec.Records), "records")
		})
	}
}
