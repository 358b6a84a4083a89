package subject

import (
	"fmt"
	"testing"
)

// bigSublist holds 100,000 subscriptions shaped like a service mesh:
// "svc.<i%100>.<i>.*" for every i, plus a few '>' watchers per service and
// a queue group per service.
func bigSublist(tb testing.TB) *Sublist[int] {
	tb.Helper()
	s := NewSublist[int]()
	const n = 100_000
	for i := range n - 300 {
		if err := s.Insert(fmt.Sprintf("svc.%d.%d.*", i%100, i), "", i); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range 100 {
		s.Insert(fmt.Sprintf("svc.%d.>", i), "", n+i)
		s.Insert(fmt.Sprintf("svc.%d.*.req", i), "workers", 2*n+i)
		s.Insert(fmt.Sprintf("svc.*.%d.>", i), "", 3*n+i)
	}
	if s.Count() != n {
		tb.Fatalf("Count = %d", s.Count())
	}
	return s
}

func BenchmarkMatchCached(b *testing.B) {
	s := bigSublist(b)
	subj := []byte("svc.42.4242.req")
	s.Match(subj)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if len(s.Match(subj).Plain) != 2 {
			b.Fatal("wrong match")
		}
	}
}

func BenchmarkMatchCachedParallel(b *testing.B) {
	s := bigSublist(b)
	subj := []byte("svc.42.4242.req")
	s.Match(subj)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Match(subj)
		}
	})
}

// BenchmarkMatchUncached100k cycles through 50,000 distinct subjects, far
// more than CacheSize, so nearly every Match walks the trie and builds a
// new Result.
func BenchmarkMatchUncached100k(b *testing.B) {
	s := bigSublist(b)
	const distinct = 50_000
	subjects := make([][]byte, distinct)
	for i := range subjects {
		j := (i * 7919) % 99_700 // spread over the services
		subjects[i] = fmt.Appendf(nil, "svc.%d.%d.req", j%100, j)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		s.Match(subjects[i])
		i++
		if i == distinct {
			i = 0
		}
	}
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.CacheMisses)/float64(b.N), "misses/op")
}

func BenchmarkInsertRemove(b *testing.B) {
	for _, bc := range []struct{ name, subj string }{
		{"literal", "svc.7.new.req"},
		{"wildcard", "svc.7.*.new"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := bigSublist(b)
			// A full cache, as on a busy hub: a wildcard Insert scans it.
			for i := range CacheSize {
				s.Match(fmt.Appendf(nil, "svc.%d.%d.req", i%100, i))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := s.Insert(bc.subj, "", -1); err != nil {
					b.Fatal(err)
				}
				if !s.Remove(bc.subj, "", -1) {
					b.Fatal("Remove = false")
				}
			}
		})
	}
}

func BenchmarkValidPublish(b *testing.B) {
	subj := []byte("svc.42.4242.req.some.longer.subject")
	b.ReportAllocs()
	for b.Loop() {
		if !ValidPublish(subj) {
			b.Fatal("invalid")
		}
	}
}
