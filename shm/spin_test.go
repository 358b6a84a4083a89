package shm

import (
	"sync"
	"testing"
	"time"
)

func TestSpinStartsAtMax(t *testing.T) {
	var s Spin
	if got := s.Budget(); got != MaxSpin {
		t.Fatalf("new budget %v, want %v", got, MaxSpin)
	}
	s.Found()
	if got := s.Budget(); got != MaxSpin {
		t.Fatalf("after a find: %v, want %v", got, MaxSpin)
	}
}

// TestSpinHalvesAndDoubles: sleeps halve the budget down to MinSpin (an
// idle subscriber spins little per wake-up; a peer that only runs when
// this side stops spinning is let run sooner), finds double it back.
func TestSpinHalvesAndDoubles(t *testing.T) {
	var s Spin
	want := MaxSpin
	for range 7 { // not 8: the eighth sleep in a row makes the next wait a probe
		s.Slept()
		want = max(want/2, MinSpin)
		if got := s.Budget(); got != want {
			t.Fatalf("after a sleep: %v, want %v", got, want)
		}
	}
	if want != MinSpin {
		t.Fatalf("seven sleeps left %v, want the floor %v", want, MinSpin)
	}
	for want < MaxSpin {
		s.Found()
		want = min(2*want, MaxSpin)
		if got := s.Budget(); got != want {
			t.Fatalf("after a find: %v, want %v", got, want)
		}
	}
}

// TestSpinProbes: every eighth wait in a row that slept makes the next
// spin MaxSpin; a probe that finds its message restores MaxSpin, one that
// does not leaves the budget where the sleeps took it.
func TestSpinProbes(t *testing.T) {
	var s Spin
	for i := 1; i <= 24; i++ {
		s.Slept()
		probe := i%probeEvery == 0
		if got := s.Budget(); (got == MaxSpin) != probe {
			t.Fatalf("after %d sleeps in a row: budget %v, probe %v", i, got, probe)
		}
	}
	if got := time.Duration(s.ns.Load()); got != MinSpin {
		t.Fatalf("the probes moved the budget between them: %v", got)
	}
	s.Found() // the probe after 24 sleeps found its message
	if got := s.Budget(); got != MaxSpin {
		t.Fatalf("after a probe's find: %v, want %v", got, MaxSpin)
	}
	s.Slept()
	s.Found() // an ordinary find after one sleep: no probe
	if got, want := s.Budget(), MaxSpin; got != want {
		t.Fatalf("after a sleep and a find: %v, want %v", got, want)
	}
}

// TestSpinConcurrent: a Spin shared by goroutines stays within bounds
// (run with -race).
func TestSpinConcurrent(t *testing.T) {
	var s Spin
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				if (i+g)%3 == 0 {
					s.Slept()
				} else {
					s.Found()
				}
				if b := s.Budget(); b < MinSpin || b > MaxSpin {
					t.Errorf("budget %v outside [%v, %v]", b, MinSpin, MaxSpin)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSpinForGivesUp: spinFor finds what poll reports, and gives up no
// sooner than its budget.
func TestSpinForGivesUp(t *testing.T) {
	if !spinFor(time.Hour, func() bool { return true }) {
		t.Fatal("an immediate find was not reported")
	}
	n := 0
	if !spinFor(time.Hour, func() bool { n++; return n == 200 }) {
		t.Fatal("a find after 200 polls was not reported")
	}
	start := time.Now()
	if spinFor(100*time.Microsecond, func() bool { return false }) {
		t.Fatal("found nothing, reported a find")
	}
	if d := time.Since(start); d < 100*time.Microsecond {
		t.Fatalf("gave up after %v, before its 100 µs budget", d)
	}
}

// TestSpinSleepsWrap: the count of sleeps in a row wraps at 2^32, a
// multiple of probeEvery, losing at most the one probe due at the wrap.
func TestSpinSleepsWrap(t *testing.T) {
	var s Spin
	s.sleeps.Store(^uint32(0) - 3)
	probes := 0
	for range 4 * probeEvery {
		s.Slept()
		if s.Budget() == MaxSpin {
			probes++
		}
	}
	if probes < 3 {
		t.Fatalf("%d probes in %d sleeps in a row across the wrap, want 3 or 4", probes, 4*probeEvery)
	}
}
