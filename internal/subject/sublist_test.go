package subject

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// canon is a Result in a comparable form: values sorted, groups sorted.
type canon struct {
	Plain  []int
	Groups [][]int
}

func canonical(r *Result[int]) canon {
	var c canon
	c.Plain = slices.Sorted(slices.Values(r.Plain))
	for _, g := range r.Groups {
		c.Groups = append(c.Groups, slices.Sorted(slices.Values(g)))
	}
	slices.SortFunc(c.Groups, slices.Compare)
	return c
}

func (c canon) String() string { return fmt.Sprintf("plain=%v groups=%v", c.Plain, c.Groups) }

func want(plain []int, groups ...[]int) canon {
	return canonical(&Result[int]{Plain: plain, Groups: groups})
}

func checkMatch(t *testing.T, s *Sublist[int], subj string, w canon) {
	t.Helper()
	got := canonical(s.Match([]byte(subj)))
	if !reflect.DeepEqual(got, w) {
		t.Errorf("Match(%q) = %v, want %v", subj, got, w)
	}
}

func mustInsert(t *testing.T, s *Sublist[int], subj, queue string, v int) {
	t.Helper()
	if err := s.Insert(subj, queue, v); err != nil {
		t.Fatalf("Insert(%q, %q, %d): %v", subj, queue, v, err)
	}
}

func TestMatchPlainAndWildcards(t *testing.T) {
	s := NewSublist[int]()
	subs := []string{
		"foo",         // 0
		"foo.bar",     // 1
		"foo.*",       // 2
		"foo.>",       // 3
		"*.bar",       // 4
		">",           // 5
		"*",           // 6
		"foo.*.baz",   // 7
		"foo.bar.baz", // 8
		"*.*.*",       // 9
		"foo.*.>",     // 10
		"a*b",         // 11: a literal token
	}
	for i, subj := range subs {
		mustInsert(t, s, subj, "", i)
	}
	tests := []struct {
		lit  string
		want []int
	}{
		{"foo", []int{0, 5, 6}},
		{"foo.bar", []int{1, 2, 3, 4, 5}},
		{"foo.baz", []int{2, 3, 5}},
		{"x.bar", []int{4, 5}},
		{"foo.bar.baz", []int{3, 5, 7, 8, 9, 10}},
		{"foo.x.baz", []int{3, 5, 7, 9, 10}},
		{"foo.x.y.z", []int{3, 5, 10}},
		{"x.y.z", []int{5, 9}},
		{"bar", []int{5, 6}},
		{"a*b", []int{5, 6, 11}},
		{"axb", []int{5, 6}},
	}
	for _, tt := range tests {
		checkMatch(t, s, tt.lit, want(tt.want))
		checkMatch(t, s, tt.lit, want(tt.want)) // again, from the cache
	}
	if got := s.Count(); got != len(subs) {
		t.Errorf("Count = %d, want %d", got, len(subs))
	}
}

func TestMatchNothing(t *testing.T) {
	s := NewSublist[int]()
	checkMatch(t, s, "foo", want(nil))
	mustInsert(t, s, "foo.bar", "", 1)
	checkMatch(t, s, "foo", want(nil))
	checkMatch(t, s, "foo.bar.baz", want(nil))
	checkMatch(t, s, "bar", want(nil))
	r := s.Match([]byte("nothing.here"))
	if r == nil || len(r.Plain) != 0 || len(r.Groups) != 0 {
		t.Errorf("Match on no subscribers = %+v, want empty non-nil Result", r)
	}
}

func TestMatchInvalidLiteral(t *testing.T) {
	s := NewSublist[int]()
	mustInsert(t, s, ">", "", 1)
	mustInsert(t, s, "foo.*", "", 2)
	for _, lit := range []string{"", ".", "foo.", "foo..bar", "foo.*", "foo.>", "*", ">", "a b", strings.Repeat("x", MaxSubjectLen+1)} {
		checkMatch(t, s, lit, want(nil))
	}
	if n := s.Stats().CacheEntries; n != 0 {
		t.Errorf("invalid subjects took %d cache entries", n)
	}
}

func TestQueueGroups(t *testing.T) {
	s := NewSublist[int]()
	mustInsert(t, s, "foo.bar", "", 1)
	mustInsert(t, s, "foo.bar", "g", 2)
	mustInsert(t, s, "foo.*", "g", 3) // same group through a wildcard: one group
	mustInsert(t, s, "foo.>", "g", 4)
	mustInsert(t, s, "foo.bar", "h", 5)
	mustInsert(t, s, "*.bar", "h", 6)
	mustInsert(t, s, "foo.*", "i", 7)
	mustInsert(t, s, "foo.baz", "g", 8)

	checkMatch(t, s, "foo.bar", want([]int{1}, []int{2, 3, 4}, []int{5, 6}, []int{7}))
	checkMatch(t, s, "foo.baz", want(nil, []int{3, 4, 8}, []int{7}))
	checkMatch(t, s, "x.bar", want(nil, []int{6}))
	checkMatch(t, s, "foo.x.y", want(nil, []int{4}))

	// Queue names are opaque: dots and wildcard characters mean nothing.
	mustInsert(t, s, "q", "a.*", 9)
	mustInsert(t, s, "q", "a.>", 10)
	mustInsert(t, s, "q", "a.*", 11)
	checkMatch(t, s, "q", want(nil, []int{9, 11}, []int{10}))
}

func TestInsertErrors(t *testing.T) {
	s := NewSublist[int]()
	for _, subj := range []string{"", ".", "a.", ".a", "a..b", "a.>.b", "a b", "a\tb", strings.Repeat("x", MaxSubjectLen+1)} {
		if err := s.Insert(subj, "", 1); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("Insert(%q) = %v, want ErrInvalidSubject", subj, err)
		}
	}
	for _, q := range []string{"a b", "a\n", "\t"} {
		if err := s.Insert("foo", q, 1); !errors.Is(err, ErrInvalidQueue) {
			t.Errorf("Insert(foo, %q) = %v, want ErrInvalidQueue", q, err)
		}
	}
	if err := s.Insert("a b", "a b", 1); !errors.Is(err, ErrInvalidSubject) {
		t.Errorf("Insert with both invalid = %v, want ErrInvalidSubject", err)
	}
	if s.Count() != 0 {
		t.Errorf("Count = %d after failed Inserts", s.Count())
	}
	if got := ErrInvalidSubject.Error(); got != "subject: invalid subject" {
		t.Errorf("ErrInvalidSubject = %q", got)
	}
}

func TestRemove(t *testing.T) {
	s := NewSublist[int]()
	mustInsert(t, s, "foo.bar", "", 1)
	mustInsert(t, s, "foo.*", "", 2)
	mustInsert(t, s, "foo.>", "g", 3)

	for _, tt := range []struct {
		subj, queue string
		v           int
	}{
		{"foo.bar", "", 2},     // wrong value
		{"foo.baz", "", 1},     // wrong subject
		{"foo.bar", "g", 1},    // wrong queue
		{"foo.>", "", 3},       // plain instead of queue
		{"foo.>", "h", 3},      // other queue
		{"foo", "", 1},         // prefix of an existing subject
		{"foo.bar.baz", "", 1}, // extension of an existing subject
		{"foo.>.x", "", 1},     // invalid
		{"", "", 1},            // invalid
		{"foo.bar", "a b", 1},  // invalid queue
		{"*.bar", "", 1},       // wildcard where none was inserted
	} {
		if s.Remove(tt.subj, tt.queue, tt.v) {
			t.Errorf("Remove(%q, %q, %d) = true for a missing subscription", tt.subj, tt.queue, tt.v)
		}
	}
	if s.Count() != 3 {
		t.Fatalf("Count = %d, want 3", s.Count())
	}
	checkMatch(t, s, "foo.bar", want([]int{1, 2}, []int{3}))

	if !s.Remove("foo.*", "", 2) {
		t.Fatal("Remove(foo.*) = false")
	}
	if s.Remove("foo.*", "", 2) {
		t.Fatal("second Remove(foo.*) = true")
	}
	checkMatch(t, s, "foo.bar", want([]int{1}, []int{3}))
	if !s.Remove("foo.>", "g", 3) || !s.Remove("foo.bar", "", 1) {
		t.Fatal("Remove = false")
	}
	checkMatch(t, s, "foo.bar", want(nil))
	if s.Count() != 0 {
		t.Errorf("Count = %d, want 0", s.Count())
	}
	if !s.root.isEmpty() || s.root.nodes != nil {
		t.Errorf("trie not pruned after removing everything: %+v", s.root)
	}
}

func TestDuplicates(t *testing.T) {
	s := NewSublist[int]()
	// The same triple twice is two subscriptions; the same value under two
	// matching subjects appears twice.
	mustInsert(t, s, "foo", "", 1)
	mustInsert(t, s, "foo", "", 1)
	mustInsert(t, s, "*", "", 1)
	mustInsert(t, s, "foo", "g", 1)
	mustInsert(t, s, "foo", "g", 1)
	checkMatch(t, s, "foo", want([]int{1, 1, 1}, []int{1, 1}))
	if s.Count() != 5 {
		t.Errorf("Count = %d, want 5", s.Count())
	}
	s.Remove("foo", "", 1)
	s.Remove("foo", "g", 1)
	checkMatch(t, s, "foo", want([]int{1, 1}, []int{1}))
}

func TestManySubscribersOneSubject(t *testing.T) {
	// Past smallSet a node switches to a map; check both shapes agree.
	s := NewSublist[int]()
	const n = 3 * smallSet
	var all []int
	for i := range n {
		mustInsert(t, s, "hot", "", i)
		mustInsert(t, s, "hot", "q", i)
		all = append(all, i)
	}
	mustInsert(t, s, "hot", "", 5) // a duplicate in map mode
	checkMatch(t, s, "hot", want(append(slices.Clone(all), 5), all))
	for i := 0; i < n; i += 2 {
		if !s.Remove("hot", "", i) || !s.Remove("hot", "q", i) {
			t.Fatalf("Remove %d = false", i)
		}
	}
	if s.Remove("hot", "", 0) {
		t.Fatal("Remove of a removed value = true")
	}
	var odd []int
	for i := 1; i < n; i += 2 {
		odd = append(odd, i)
	}
	checkMatch(t, s, "hot", want(append(slices.Clone(odd), 5), odd))
	for _, i := range odd {
		s.Remove("hot", "", i)
		s.Remove("hot", "q", i)
	}
	s.Remove("hot", "", 5)
	checkMatch(t, s, "hot", want(nil))
	if s.Count() != 0 || !s.root.isEmpty() {
		t.Errorf("Count = %d, root empty = %v", s.Count(), s.root.isEmpty())
	}
}

func TestCacheInvalidation(t *testing.T) {
	s := NewSublist[int]()
	mustInsert(t, s, "foo.bar", "", 1)
	checkMatch(t, s, "foo.bar", want([]int{1}))
	checkMatch(t, s, "foo.baz", want(nil))
	checkMatch(t, s, "other", want(nil))
	before := s.Match([]byte("foo.bar"))

	// A wildcard insert must reach cached results it matches.
	mustInsert(t, s, "foo.*", "", 2)
	checkMatch(t, s, "foo.bar", want([]int{1, 2}))
	checkMatch(t, s, "foo.baz", want([]int{2}))
	// A literal insert must reach its own cached subject.
	mustInsert(t, s, "other", "g", 3)
	checkMatch(t, s, "other", want(nil, []int{3}))
	mustInsert(t, s, ">", "", 4)
	checkMatch(t, s, "other", want([]int{4}, []int{3}))
	checkMatch(t, s, "foo.bar", want([]int{1, 2, 4}))

	// Removes likewise.
	s.Remove("foo.*", "", 2)
	checkMatch(t, s, "foo.bar", want([]int{1, 4}))
	checkMatch(t, s, "foo.baz", want([]int{4}))
	s.Remove(">", "", 4)
	s.Remove("other", "g", 3)
	checkMatch(t, s, "other", want(nil))
	s.Remove("foo.bar", "", 1)
	checkMatch(t, s, "foo.bar", want(nil))

	// A Result handed out earlier never changes.
	if !reflect.DeepEqual(canonical(before), want([]int{1})) {
		t.Errorf("an old Result changed to %v", canonical(before))
	}
}

func TestCacheUnaffectedEntriesKept(t *testing.T) {
	s := NewSublist[int]()
	mustInsert(t, s, "a.x", "", 1)
	s.Match([]byte("a.x"))
	s.Match([]byte("b.x"))
	mustInsert(t, s, "b.*", "", 2)
	if n := s.Stats().CacheEntries; n != 1 {
		t.Errorf("CacheEntries = %d after an insert affecting one of two, want 1", n)
	}
	mustInsert(t, s, "c", "", 3)
	if n := s.Stats().CacheEntries; n != 1 {
		t.Errorf("CacheEntries = %d after an unrelated insert, want 1", n)
	}
}

func TestCacheBounded(t *testing.T) {
	s := NewSublist[int]()
	mustInsert(t, s, "svc.>", "", 1)
	for i := range 3 * CacheSize {
		if r := s.Match(fmt.Appendf(nil, "svc.%d", i)); len(r.Plain) != 1 {
			t.Fatalf("Match svc.%d = %v", i, r.Plain)
		}
	}
	st := s.Stats()
	if st.CacheEntries > CacheSize || st.CacheEntries < CacheSize/2 {
		t.Errorf("CacheEntries = %d, want in [%d, %d]", st.CacheEntries, CacheSize/2, CacheSize)
	}
	if st.CacheMisses != 3*CacheSize {
		t.Errorf("CacheMisses = %d, want %d", st.CacheMisses, 3*CacheSize)
	}
	mustInsert(t, s, "svc.*", "", 2)
	if n := s.Stats().CacheEntries; n != 0 {
		t.Errorf("CacheEntries = %d after a wildcard insert matching all, want 0", n)
	}
}

func TestMatchCachedNoAlloc(t *testing.T) {
	s := NewSublist[int]()
	mustInsert(t, s, "foo.*", "", 1)
	mustInsert(t, s, "foo.>", "g", 2)
	subj := []byte("foo.bar")
	none := []byte("nobody.listens")
	s.Match(subj)
	s.Match(none)
	n := testing.AllocsPerRun(1000, func() {
		s.Match(subj)
		s.Match(none)
	})
	if n != 0 {
		t.Errorf("cached Match allocates %v times", n)
	}
}

func TestConcurrent(t *testing.T) {
	s := NewSublist[int]()
	const workers, rounds = 4, 300
	subjects := []string{"a.b", "a.*", "a.>", "*.b", ">", "a.b.c", "x.y"}
	literals := [][]byte{[]byte("a.b"), []byte("a.b.c"), []byte("x.y"), []byte("q")}
	mustInsert(t, s, ">", "", -1) // always there: every Match sees it

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				subj := subjects[(w+i)%len(subjects)]
				queue := ""
				if i%3 == 0 {
					queue = "g"
				}
				v := w*rounds + i
				if err := s.Insert(subj, queue, v); err != nil {
					t.Error(err)
					return
				}
				if !s.Remove(subj, queue, v) {
					t.Errorf("Remove(%q, %q, %d) = false", subj, queue, v)
					return
				}
			}
		})
		wg.Go(func() {
			for i := range rounds * 4 {
				r := s.Match(literals[(w+i)%len(literals)])
				if !slices.Contains(r.Plain, -1) {
					t.Errorf("Match lost the permanent '>' subscription: %v", r.Plain)
					return
				}
				_ = s.Count()
			}
		})
	}
	wg.Wait()
	if s.Count() != 1 {
		t.Errorf("Count = %d, want 1", s.Count())
	}
	for _, lit := range literals {
		checkMatch(t, s, string(lit), want([]int{-1}))
	}
}

func TestConcurrentMonotonic(t *testing.T) {
	// After Insert returns, every later Match must see the subscription,
	// even when the subject was cached before.
	s := NewSublist[int]()
	lit := []byte("m.n")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					s.Match(lit)
				}
			}
		})
	}
	for i := range 200 {
		mustInsert(t, s, "m.*", "", i)
		if r := s.Match(lit); len(r.Plain) != i+1 {
			t.Fatalf("after %d inserts Match sees %d", i+1, len(r.Plain))
		}
	}
	for i := range 200 {
		s.Remove("m.*", "", i)
		if r := s.Match(lit); len(r.Plain) != 199-i {
			t.Fatalf("after %d removes Match sees %d", i+1, len(r.Plain))
		}
	}
	close(stop)
	wg.Wait()
}
