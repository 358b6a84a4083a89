package subject

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// refSub is one subscription of the reference model.
type refSub struct {
	subj, queue string
	id          int
}

// refList is the reference model: a plain slice searched in full.
type refList struct{ subs []refSub }

func (m *refList) insert(subj, queue string, id int) {
	m.subs = append(m.subs, refSub{subj, queue, id})
}

func (m *refList) remove(subj, queue string, id int) bool {
	for i, s := range m.subs {
		if s == (refSub{subj, queue, id}) {
			m.subs = slices.Delete(m.subs, i, i+1)
			return true
		}
	}
	return false
}

// match returns plain ids and, per queue name, member ids, all sorted.
func (m *refList) match(lit string) (plain []int, groups map[string][]int) {
	groups = map[string][]int{}
	for _, s := range m.subs {
		if !refMatch(s.subj, lit) {
			continue
		}
		if s.queue == "" {
			plain = append(plain, s.id)
		} else {
			groups[s.queue] = append(groups[s.queue], s.id)
		}
	}
	return plain, groups
}

// refCanon turns the model's answer into the form canonical gives a Result.
// Result carries no group names, so groups compare as a multiset of
// multisets; ids are unique per Insert in the property test, so a member in
// the wrong group still shows.
func refCanon(plain []int, groups map[string][]int) canon {
	r := &Result[int]{Plain: plain}
	for _, g := range groups {
		r.Groups = append(r.Groups, g)
	}
	return canonical(r)
}

var (
	tokens  = []string{"a", "b", "c"}
	queues  = []string{"", "", "q", "r"}
	genTok  = rapid.SampledFrom(tokens)
	genLen  = rapid.IntRange(1, 4)
	genWild = rapid.IntRange(0, 9)
)

// genFilter makes a subscription subject over a small alphabet, so that
// subscriptions collide and wildcards overlap often.
func genFilter(t *rapid.T) string {
	n := genLen.Draw(t, "len")
	toks := make([]string, n)
	for i := range toks {
		switch w := genWild.Draw(t, "wild"); {
		case w < 3:
			toks[i] = "*"
		case w == 3 && i == n-1:
			toks[i] = ">"
		default:
			toks[i] = genTok.Draw(t, "tok")
		}
	}
	return strings.Join(toks, ".")
}

func genLiteral(t *rapid.T) string {
	n := genLen.Draw(t, "len")
	toks := make([]string, n)
	for i := range toks {
		toks[i] = genTok.Draw(t, "tok")
	}
	return strings.Join(toks, ".")
}

func TestSublistModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := NewSublist[int]()
		var m refList
		nextID := 0
		t.Repeat(map[string]func(*rapid.T){
			"insert": func(t *rapid.T) {
				subj := genFilter(t)
				queue := rapid.SampledFrom(queues).Draw(t, "queue")
				id := nextID
				nextID++
				// Sometimes reuse an id: the same value under several
				// subjects, or the same triple twice.
				if len(m.subs) > 0 && rapid.IntRange(0, 4).Draw(t, "reuse") == 0 {
					id = rapid.SampledFrom(m.subs).Draw(t, "old").id
				}
				if err := s.Insert(subj, queue, id); err != nil {
					t.Fatalf("Insert(%q, %q, %d): %v", subj, queue, id, err)
				}
				m.insert(subj, queue, id)
			},
			"remove existing": func(t *rapid.T) {
				if len(m.subs) == 0 {
					t.Skip("empty")
				}
				x := rapid.SampledFrom(m.subs).Draw(t, "sub")
				if !s.Remove(x.subj, x.queue, x.id) {
					t.Fatalf("Remove(%q, %q, %d) = false", x.subj, x.queue, x.id)
				}
				m.remove(x.subj, x.queue, x.id)
			},
			"remove any": func(t *rapid.T) {
				subj := genFilter(t)
				queue := rapid.SampledFrom(queues).Draw(t, "queue")
				id := rapid.IntRange(0, nextID).Draw(t, "id")
				got, want := s.Remove(subj, queue, id), m.remove(subj, queue, id)
				if got != want {
					t.Fatalf("Remove(%q, %q, %d) = %v, model says %v", subj, queue, id, got, want)
				}
			},
			"match": func(t *rapid.T) {
				lit := genLiteral(t)
				got := canonical(s.Match([]byte(lit)))
				want := refCanon(m.match(lit))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("Match(%q) = %v, model says %v", lit, got, want)
				}
			},
			"": func(t *rapid.T) {
				if s.Count() != len(m.subs) {
					t.Fatalf("Count = %d, model has %d", s.Count(), len(m.subs))
				}
				if len(m.subs) == 0 && (!s.root.isEmpty() || s.root.nodes != nil) {
					t.Fatalf("trie not pruned when empty")
				}
			},
		})
	})
}
