package subject

import (
	"reflect"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"", ".", "..", "a", "a.", ".a", "a..b", "a.b.c", "*", ">", "a.*", "a.>",
	"a.>.b", "*.*", ">.a", "a b", "a\tb", "a\r\nb", "a\fb", "a*b", "a>", "**",
	"héllo.wörld", "\xff.\x00", "foo.bar.*.baz.>", "$SB.q.jobs",
}

func FuzzValid(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		pub, sub, q := ValidPublish(b), ValidSubscribe(b), ValidQueue(b)
		if pub && !sub {
			t.Errorf("ValidPublish(%q) but not ValidSubscribe", s)
		}
		if sub && !q {
			t.Errorf("ValidSubscribe(%q) but not ValidQueue", s)
		}
		if want := refValid(s, false); pub != want {
			t.Errorf("ValidPublish(%q) = %v, reference %v", s, pub, want)
		}
		if want := refValid(s, true); sub != want {
			t.Errorf("ValidSubscribe(%q) = %v, reference %v", s, sub, want)
		}
		if sub && isLiteral(s) != pub {
			t.Errorf("isLiteral(%q) = %v, ValidPublish %v", s, isLiteral(s), pub)
		}
	})
}

func FuzzMatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		for _, l := range []string{"a", "a.b", "a.b.c", "foo.bar.x.baz.y", "a*b"} {
			f.Add(s, l)
		}
	}
	f.Fuzz(func(t *testing.T, filter, lit string) {
		s := NewSublist[int]()
		err := s.Insert(filter, "", 1)
		if (err == nil) != ValidSubscribe([]byte(filter)) {
			t.Fatalf("Insert(%q) = %v, ValidSubscribe disagrees", filter, err)
		}
		// Also under a queue group, named after the literal when that works.
		qerr := s.Insert(filter, lit, 2)
		wantQ := err == nil && (lit == "" || ValidQueue([]byte(lit)))
		if (qerr == nil) != wantQ {
			t.Fatalf("Insert(%q, queue %q) = %v", filter, lit, qerr)
		}
		var w canon
		if err == nil && ValidPublish([]byte(lit)) && refMatch(filter, lit) {
			switch {
			case qerr != nil:
				w = want([]int{1})
			case lit == "":
				w = want([]int{1, 2})
			default:
				w = want([]int{1}, []int{2})
			}
			if !matchTokens(strings.Split(filter, "."), lit) {
				t.Errorf("matchTokens(%q, %q) = false, reference true", filter, lit)
			}
		} else if err == nil && ValidPublish([]byte(lit)) && matchTokens(strings.Split(filter, "."), lit) {
			t.Errorf("matchTokens(%q, %q) = true, reference false", filter, lit)
		}
		for range 2 { // uncached, then cached
			if got := canonical(s.Match([]byte(lit))); !reflect.DeepEqual(got, w) {
				t.Fatalf("filter %q: Match(%q) = %v, want %v", filter, lit, got, w)
			}
		}
		if err == nil {
			s.Remove(filter, "", 1)
			if qerr == nil {
				s.Remove(filter, lit, 2)
			}
		}
		if s.Count() != 0 || !s.root.isEmpty() {
			t.Fatalf("filter %q: not empty after Remove", filter)
		}
		if got := canonical(s.Match([]byte(lit))); !reflect.DeepEqual(got, want(nil)) {
			t.Fatalf("filter %q: Match(%q) after Remove = %v", filter, lit, got)
		}
	})
}
