package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"switchboard/queue/journal"
	"switchboard/queue/queuetest"
)

// tracker collects the done callbacks of one journal generation. Once
// frozen (at a crash) it ignores acknowledgements: they came after the
// moment the crash captured.
type tracker struct {
	mu     sync.Mutex
	frozen bool
	acked  map[uint64]bool
	order  []uint64
	errs   []error
	wg     sync.WaitGroup
}

func newTracker() *tracker { return &tracker{acked: map[uint64]bool{}} }

// done returns a callback for one append.
func (tr *tracker) done() func(uint64, error) {
	tr.wg.Add(1)
	return func(i uint64, err error) {
		defer tr.wg.Done()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.order = append(tr.order, i)
		if err != nil {
			tr.errs = append(tr.errs, fmt.Errorf("index %d: %w", i, err))
		} else if !tr.frozen {
			tr.acked[i] = true
		}
	}
}

// freeze returns the acknowledged set and ignores later ones.
func (tr *tracker) freeze() map[uint64]bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.frozen = true
	out := make(map[uint64]bool, len(tr.acked))
	for i := range tr.acked {
		out[i] = true
	}
	return out
}

// jmodel is what the journal must hold.
type jmodel struct {
	recs    map[uint64][]byte // every record that may be in the journal
	durable map[uint64]bool   // records a crash must not lose
	first   uint64            // nothing below it may ever appear again
	next    uint64            // index of the next append
}

// TestJournalModel drives a journal on a FaultFS through random appends
// (single, pipelined from one goroutine, concurrent from several),
// reads, scans, RemoveBefore, Reset, Close and reopen, and power cuts
// (with appends in flight, torn writes and garbage), checking it against
// a model after every step. After every crash and reopen: each record
// acknowledged before the crash (SyncAlways; before the last Close in
// the other modes) is there with the same bytes and index; nothing below
// the removal floor comes back; nothing appears that was not appended
// under that index; damage reports name no durable record; indexes go on
// increasing.
func TestJournalModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		mode := rapid.SampledFrom([]journal.SyncMode{journal.SyncAlways, journal.SyncAlways, journal.SyncInterval, journal.SyncNever}).Draw(t, "mode")
		opts := journal.Options{
			FS:          queuetest.New().StrictDirs(),
			SegmentSize: journal.MinSegmentSize,
			Sync:        mode,
			MaxRecord:   rapid.SampledFrom([]int{600, 2000}).Draw(t, "maxRecord"),
			Logger:      quiet,
		}
		const dir = "/queues/q1"
		ffs := opts.FS.(*queuetest.FaultFS)
		j, rec := mustOpen(t, dir, opts)
		if rec.First != 1 || rec.Last != 0 {
			t.Fatalf("new journal %+v", rec)
		}
		defer func() { j.Close() }()
		m := &jmodel{recs: map[uint64][]byte{}, durable: map[uint64]bool{}, first: 1, next: 1}
		ctx := context.Background()
		tr := newTracker()

		// Payloads of 0 to 400 bytes, uniformly (rapid's slices are
		// mostly tiny), so that segments of 4 KiB fill up.
		genPayload := rapid.Custom(func(t *rapid.T) []byte {
			p := make([]byte, rapid.IntRange(0, 400).Draw(t, "len"))
			r := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "fill"), 0))
			for i := range p {
				p[i] = byte(r.Uint32())
			}
			return p
		})
		// settle waits for the in-flight appends and takes the results.
		settle := func(t *rapid.T) {
			tr.wg.Wait()
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if len(tr.errs) > 0 {
				t.Fatalf("append failed: %v", tr.errs[0])
			}
			if !slices.IsSorted(tr.order) {
				t.Fatalf("done callbacks out of index order: %v", tr.order)
			}
			tr.order = tr.order[:0]
			for i := range tr.acked {
				if _, ok := m.recs[i]; ok && mode == journal.SyncAlways {
					m.durable[i] = true
				}
			}
			clear(tr.acked)
		}
		appendOne := func(t *rapid.T, p []byte) {
			idx, err := j.Append(ctx, p, tr.done())
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if idx != m.next {
				t.Fatalf("Append got index %d, want %d", idx, m.next)
			}
			m.recs[idx] = p
			m.next++
		}
		reopen := func(t *rapid.T, fsys *queuetest.FaultFS, crashed bool, mustHave map[uint64]bool) {
			opts.FS = fsys
			var rec *journal.Recovery
			j, rec = mustOpen(t, dir, opts)
			tr = newTracker()
			if len(rec.Gaps) > 0 {
				t.Fatalf("gaps after reopen: %+v", rec.Gaps)
			}
			for _, d := range rec.Damage {
				if !crashed {
					continue // damage a crash left mid-log is found again
				}
				for i := d.FirstLost; i != 0 && i <= d.LastLost; i++ {
					if mustHave[i] {
						t.Fatalf("damage %+v covers durable record %d", d, i)
					}
				}
			}
			if j.First() < m.first {
				t.Fatalf("First %d after reopen, below the removal floor %d", j.First(), m.first)
			}
			present := map[uint64][]byte{}
			err := j.Scan(0, func(i uint64, rec []byte) error {
				want, ok := m.recs[i]
				if !ok || !bytes.Equal(want, rec) {
					return fmt.Errorf("record %d = %q was never appended (model %q, %v)", i, rec, want, ok)
				}
				present[i] = bytes.Clone(rec)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := range mustHave {
				if _, ok := present[i]; !ok && i >= m.first {
					t.Fatalf("durable record %d lost (journal [%d, %d], recovery %+v)", i, j.First(), j.Last(), rec)
				}
			}
			var maxDurable uint64
			for i := range mustHave {
				maxDurable = max(maxDurable, i)
			}
			if j.Last() < maxDurable || j.Last()+1 < m.first {
				t.Fatalf("Last %d after reopen: durable records up to %d, floor %d", j.Last(), maxDurable, m.first)
			}
			// The journal now holds exactly present, durably.
			m.recs, m.durable = present, map[uint64]bool{}
			for i := range present {
				m.durable[i] = true
			}
			m.first, m.next = j.First(), j.Last()+1
		}
		// check compares every index around the kept range with the model.
		check := func(t *rapid.T) {
			first, last := j.First(), j.Last()
			if first != m.first || last != m.next-1 {
				t.Fatalf("range [%d, %d], model [%d, %d]", first, last, m.first, m.next-1)
			}
			var n uint64
			for i := max(first, 2) - 1; i <= last+1; i++ {
				got, err := j.Read(i, nil)
				want, ok := m.recs[i]
				switch {
				case i == 0 || i > last:
					if !errors.Is(err, journal.ErrNotFound) {
						t.Fatalf("Read %d past Last %d: %v", i, last, err)
					}
				case i < first:
					if !errors.Is(err, journal.ErrRemoved) {
						t.Fatalf("Read %d before First %d: %v", i, first, err)
					}
				case !ok:
					if !errors.Is(err, journal.ErrLost) {
						t.Fatalf("Read %d, lost in a crash: %q, %v", i, got, err)
					}
				case err != nil || !bytes.Equal(got, want):
					t.Fatalf("Read %d = %q, %v; want %q", i, got, err, want)
				default:
					n++
				}
			}
			if st := j.Stats(); st.Records != n {
				t.Fatalf("Stats.Records %d, model %d", st.Records, n)
			}
		}

		// Start with a few segments' worth, so RemoveBefore, Reset and
		// crashes have something to work on from the first step.
		for range rapid.IntRange(0, 200).Draw(t, "prefill") {
			appendOne(t, genPayload.Draw(t, "payload"))
		}
		settle(t)
		// genBefore picks a RemoveBefore argument, mostly in the kept
		// range.
		genBefore := func(t *rapid.T) uint64 {
			if rapid.IntRange(0, 4).Draw(t, "anywhere") == 0 {
				return rapid.Uint64Range(0, m.next+1).Draw(t, "before")
			}
			return rapid.Uint64Range(m.first, m.next+1).Draw(t, "before")
		}

		// crashDuring cuts the power just before the k-th file system
		// call of an append batch, a RemoveBefore, a Reset or an Open,
		// with k within the calls that operation makes.
		crashDuring := func(t *rapid.T, what string) {
			calls := 16
			if what != "appends" {
				calls = 8 + 3*j.Stats().Segments
			}
			k := int32(rapid.IntRange(1, calls).Draw(t, "atCall"))
			rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 9))
			var (
				crashed *queuetest.FaultFS
				acked   map[uint64]bool
				count   atomic.Int32
			)
			hook := func(op queuetest.Op, name string, n int) error {
				if count.Add(1) == k {
					acked = tr.freeze()
					crashed = ffs.Crash(rng)
				}
				return nil
			}
			if what != "open" {
				ffs.SetHook(hook)
			}
			mustHave := map[uint64]bool{}
			for i := range m.durable {
				mustHave[i] = true
			}
			var resetAt uint64
			old, oldFirst := maps.Clone(mustHave), m.first
			switch what {
			case "appends":
				for range rapid.IntRange(1, 40).Draw(t, "n") {
					appendOne(t, genPayload.Draw(t, "payload"))
				}
				tr.wg.Wait()
			case "removeBefore":
				x := genBefore(t)
				if err := j.RemoveBefore(x); err != nil {
					t.Fatal(err)
				}
				for i := range mustHave {
					if i < x {
						delete(mustHave, i) // may be gone if the crash came first
					}
				}
				if crashed == nil { // it returned before the crash: it must hold
					m.first = j.First()
				}
			case "reset":
				resetAt = m.next
				if err := j.Reset(); err != nil {
					t.Fatal(err)
				}
				clear(mustHave)
				if crashed == nil {
					m.first = resetAt
				}
			case "open":
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				for i := range m.recs {
					mustHave[i] = true
				}
				ffs.SetHook(hook)
				j, _ = mustOpen(t, dir, opts) // on ffs
			}
			ffs.SetHook(nil)
			if crashed == nil {
				acked = tr.freeze()
				crashed = ffs.Crash(rng)
			}
			if mode == journal.SyncAlways {
				for i := range acked {
					if i >= m.first && (resetAt == 0 || i >= resetAt) {
						mustHave[i] = true
					}
				}
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			ffs = crashed
			reopen(t, ffs, true, mustHave)
			// A Reset is all or nothing: once its segment is durable,
			// no record from before it comes back; until then none
			// is gone.
			if resetAt != 0 && j.First() < resetAt {
				if j.First() != oldFirst {
					t.Fatalf("interrupted Reset at %d half done: First %d, was %d", resetAt, j.First(), oldFirst)
				}
				for i := range old {
					if _, ok := m.recs[i]; !ok {
						t.Fatalf("interrupted Reset at %d half done: record %d gone, journal [%d, %d]", resetAt, i, j.First(), j.Last())
					}
				}
			}
		}

		t.Repeat(map[string]func(*rapid.T){
			"append": func(t *rapid.T) {
				appendOne(t, genPayload.Draw(t, "payload"))
				settle(t)
			},
			"pipelined": func(t *rapid.T) {
				for range rapid.IntRange(1, 30).Draw(t, "n") {
					appendOne(t, genPayload.Draw(t, "payload"))
				}
				settle(t)
			},
			"concurrent": func(t *rapid.T) {
				g := rapid.IntRange(2, 4).Draw(t, "goroutines")
				k := rapid.IntRange(1, 10).Draw(t, "each")
				var mu sync.Mutex
				got := map[uint64][]byte{}
				var wg sync.WaitGroup
				errc := make(chan error, g*k)
				for w := range g {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range k {
							p := []byte(fmt.Sprintf("g%d-%d-%d", w, i, m.next))
							idx, err := j.Append(ctx, p, tr.done())
							if err != nil {
								errc <- err
								return
							}
							mu.Lock()
							got[idx] = p
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				close(errc)
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				for i := m.next; i < m.next+uint64(g*k); i++ {
					if got[i] == nil {
						t.Fatalf("concurrent appends: index %d not given (%d appends from %d)", i, g*k, m.next)
					}
					m.recs[i] = got[i]
				}
				m.next += uint64(g * k)
				settle(t)
			},
			"tooLarge": func(t *rapid.T) {
				if _, err := j.Append(ctx, make([]byte, opts.MaxRecord+1), nil); !errors.Is(err, journal.ErrTooLarge) {
					t.Fatalf("oversized append: %v", err)
				}
			},
			"scan": func(t *rapid.T) {
				from := rapid.Uint64Range(0, m.next+1).Draw(t, "from")
				var want []uint64
				for i := range m.recs {
					if i >= max(from, m.first) {
						want = append(want, i)
					}
				}
				slices.Sort(want)
				var got []uint64
				err := j.Scan(from, func(i uint64, rec []byte) error {
					if !bytes.Equal(rec, m.recs[i]) {
						return fmt.Errorf("scan %d = %q, want %q", i, rec, m.recs[i])
					}
					got = append(got, i)
					return nil
				})
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("Scan(%d) = %v, %v; want %v", from, got, err, want)
				}
			},
			"removeBefore": func(t *rapid.T) {
				x := genBefore(t)
				old := j.First()
				if err := j.RemoveBefore(x); err != nil {
					t.Fatal(err)
				}
				first := j.First()
				if first < old || first > max(x, old) {
					t.Fatalf("RemoveBefore(%d): First %d -> %d", x, old, first)
				}
				for i := range m.recs {
					if i < first {
						delete(m.recs, i)
						delete(m.durable, i)
					}
				}
				m.first = first
			},
			"reset": func(t *rapid.T) {
				if err := j.Reset(); err != nil {
					t.Fatal(err)
				}
				clear(m.recs)
				clear(m.durable)
				m.first = m.next
				if st := j.Stats(); st.Segments != 1 || st.Records != 0 {
					t.Fatalf("after Reset: %+v", st)
				}
			},
			"reopen": func(t *rapid.T) {
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				for i := range m.recs {
					m.durable[i] = true // Close fsyncs in every mode
				}
				reopen(t, ffs, false, m.durable)
			},
			"crash": func(t *rapid.T) {
				// Appends in flight at the moment of the power cut.
				for range rapid.IntRange(0, 20).Draw(t, "inflight") {
					appendOne(t, genPayload.Draw(t, "payload"))
				}
				acked := tr.freeze()
				mustHave := map[uint64]bool{}
				for i := range m.durable {
					mustHave[i] = true
				}
				if mode == journal.SyncAlways {
					for i := range acked {
						mustHave[i] = true
					}
				}
				var rng *rand.Rand
				if rapid.IntRange(0, 4).Draw(t, "clean") > 0 {
					rng = rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 7))
				}
				crashed := ffs.Crash(rng)
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				ffs = crashed
				reopen(t, ffs, true, mustHave)
			},
			"crashInAppends":      func(t *rapid.T) { crashDuring(t, "appends") },
			"crashInRemoveBefore": func(t *rapid.T) { crashDuring(t, "removeBefore") },
			"crashInReset":        func(t *rapid.T) { crashDuring(t, "reset") },
			"crashInOpen":         func(t *rapid.T) { crashDuring(t, "open") },
			"lock": func(t *rapid.T) {
				o := opts
				o.FS = ffs
				if _, _, err := journal.Open(dir, o); !errors.Is(err, journal.ErrLocked) {
					t.Fatalf("second Open: %v, want ErrLocked", err)
				}
			},
			"": check,
		})
		if err := j.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
