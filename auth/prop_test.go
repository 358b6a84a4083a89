package auth

import (
	"flag"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"
)

// The evaluator is checked against a reference written from the spec
// alone: a naive loop over the rules with a recursive token matcher for
// literal subjects, and, for subscriptions, "covers" and "overlaps"
// decided by brute force over every literal subject of a finite universe.
//
// The universe: every subject of 1 to refMaxPat+1 tokens over the
// alphabet the patterns use plus one token no pattern uses ("z"). That is
// enough: a pattern of at most refMaxPat tokens cannot tell apart two
// tokens it does not name, nor two lengths beyond refMaxPat+1, so if S
// matches a subject A does not, it matches one in the universe.

var (
	refAlphabet = []string{"a", "b", "$SB", "c>"} // "c>" is a literal token
	refFresh    = "z"
	refMaxPat   = 3
)

// refUniverse lists the literal subjects, as token slices.
var refUniverse = sync.OnceValue(func() [][]string {
	toks := append(slices.Clone(refAlphabet), refFresh)
	var all [][]string
	var gen func(prefix []string)
	gen = func(prefix []string) {
		if len(prefix) > 0 {
			all = append(all, slices.Clone(prefix))
		}
		if len(prefix) == refMaxPat+1 {
			return
		}
		for _, t := range toks {
			gen(append(prefix, t))
		}
	}
	gen(nil)
	return all
})

// refMatch is the reference matcher: tokens, recursively.
func refMatch(p, l []string) bool {
	switch {
	case len(p) == 0:
		return len(l) == 0
	case p[0] == ">":
		return len(l) >= 1
	case len(l) == 0:
		return false
	case p[0] == "*" || p[0] == l[0]:
		return refMatch(p[1:], l[1:])
	}
	return false
}

// refSet returns the set of universe subjects pattern p matches, as a bit
// set; results are memoized, the set of patterns being small.
var refSets sync.Map // string → *big.Int

func refSet(p string) *big.Int {
	if v, ok := refSets.Load(p); ok {
		return v.(*big.Int)
	}
	set := new(big.Int)
	pt := strings.Split(p, ".")
	for i, l := range refUniverse() {
		if refMatch(pt, l) {
			set.SetBit(set, i, 1)
		}
	}
	refSets.Store(p, set)
	return set
}

func refCovers(a, s string) bool {
	sa, ss := refSet(a), refSet(s)
	return new(big.Int).AndNot(ss, sa).Sign() == 0
}

func refOverlaps(d, s string) bool {
	return new(big.Int).And(refSet(d), refSet(s)).Sign() != 0
}

// refPrincipals lists the principals of an identity, per the spec.
func refPrincipals(id *Identity) map[string]bool {
	ps := map[string]bool{"*": true}
	if id.Local {
		ps[fmt.Sprintf("uid:%d", id.UID)] = true
		ps[fmt.Sprintf("gid:%d", id.GID)] = true
		for _, g := range id.Groups {
			ps[fmt.Sprintf("gid:%d", g)] = true
		}
		if id.UserName != "" {
			ps["user:"+id.UserName] = true
		}
		for _, g := range id.GroupNames {
			ps["group:"+g] = true
		}
	}
	if id.CertCN != "" {
		ps["cert:"+id.CertCN] = true
	}
	if id.Login != "" {
		ps["login:"+id.Login] = true
	}
	if id.Token != "" {
		ps["token:"+id.Token] = true
	}
	if id.Anonymous {
		ps["anonymous"] = true
	}
	return ps
}

// refGrant is the union of the applying rules' lists.
type refGrant struct {
	allowPub, allowSub, denyPub, denySub []string
	limits                               Limits
}

func newRefGrant(rules []RuleSpec, id *Identity, owner uint32) *refGrant {
	g := &refGrant{}
	if id.Local && (id.UID == 0 || id.UID == owner) {
		g.allowPub = []string{">", "$SB.>"}
		g.allowSub = []string{">"}
	}
	ps := refPrincipals(id)
	lim := func(have *int, v int) {
		if v > 0 && (*have == 0 || v < *have) {
			*have = v
		}
	}
	for _, r := range rules {
		applies := false
		for _, w := range r.Who {
			applies = applies || ps[w]
		}
		if !applies {
			continue
		}
		g.allowPub = append(g.allowPub, r.AllowPublish...)
		g.allowSub = append(g.allowSub, r.AllowSubscribe...)
		g.denyPub = append(g.denyPub, r.DenyPublish...)
		g.denySub = append(g.denySub, r.DenySubscribe...)
		lim(&g.limits.MaxConnections, r.MaxConnections)
		lim(&g.limits.MaxSubscriptions, r.MaxSubscriptions)
		lim(&g.limits.MaxPayload, int(r.MaxPayload))
	}
	return g
}

func (g *refGrant) publish(subj string) bool {
	l := strings.Split(subj, ".")
	allowed := false
	for _, p := range g.allowPub {
		pt := strings.Split(p, ".")
		if refMatch(pt, l) && (l[0] != "$SB" || pt[0] == "$SB") {
			allowed = true
		}
	}
	for _, p := range g.denyPub {
		if refMatch(strings.Split(p, "."), l) {
			allowed = false
		}
	}
	return allowed
}

func (g *refGrant) subscribe(s string) (allowed, filter bool) {
	for _, a := range g.allowSub {
		allowed = allowed || refCovers(a, s)
	}
	for _, d := range g.denySub {
		if refCovers(d, s) {
			return false, false
		}
		filter = filter || refOverlaps(d, s)
	}
	return allowed, allowed && filter
}

func (g *refGrant) deliver(subj string) bool {
	for _, d := range g.denySub {
		if refMatch(strings.Split(d, "."), strings.Split(subj, ".")) {
			return false
		}
	}
	return true
}

func (g *refGrant) empty() bool { return len(g.allowPub) == 0 && len(g.allowSub) == 0 }

func (g *refGrant) unrestricted() bool {
	return slices.Contains(g.allowPub, ">") && slices.Contains(g.allowPub, "$SB.>") &&
		slices.Contains(g.allowSub, ">") && len(g.denyPub) == 0 && len(g.denySub) == 0
}

// Generators.

var (
	genToken     = rapid.SampledFrom(refAlphabet)
	genPrincipal = rapid.SampledFrom([]string{
		"*", "*", "*", "uid:0", "uid:1000", "uid:7", "gid:7", "gid:20", "user:alice", "group:staff",
		"cert:web", "login:web", "token:ci", "anonymous",
	})
)

func genPattern(t *rapid.T, label string) string {
	n := rapid.IntRange(1, refMaxPat).Draw(t, label+"-len")
	toks := make([]string, n)
	for i := range toks {
		switch w := rapid.IntRange(0, 9).Draw(t, label+"-wild"); {
		case w < 2:
			toks[i] = "*"
		case w < 4 && i == n-1:
			toks[i] = ">"
		default:
			toks[i] = genToken.Draw(t, label+"-tok")
		}
	}
	return strings.Join(toks, ".")
}

func genLiteral(t *rapid.T) string {
	n := rapid.IntRange(1, refMaxPat+1).Draw(t, "lit-len")
	toks := make([]string, n)
	for i := range toks {
		toks[i] = rapid.SampledFrom(append(slices.Clone(refAlphabet), refFresh)).Draw(t, "lit-tok")
	}
	return strings.Join(toks, ".")
}

func genPatterns(t *rapid.T, label string) []string {
	pats := make([]string, rapid.IntRange(0, 2).Draw(t, label+"-n"))
	for i := range pats {
		pats[i] = genPattern(t, label)
	}
	return pats
}

func genRule(t *rapid.T) RuleSpec {
	r := RuleSpec{
		Who:              rapid.SliceOfN(genPrincipal, 1, 3).Draw(t, "who"),
		AllowPublish:     genPatterns(t, "allow_publish"),
		AllowSubscribe:   genPatterns(t, "allow_subscribe"),
		DenyPublish:      genPatterns(t, "deny_publish"),
		DenySubscribe:    genPatterns(t, "deny_subscribe"),
		MaxConnections:   rapid.IntRange(0, 3).Draw(t, "max_connections"),
		MaxSubscriptions: rapid.IntRange(0, 3).Draw(t, "max_subscriptions"),
		MaxPayload:       Size(rapid.IntRange(0, 3).Draw(t, "max_payload")),
	}
	if len(r.AllowPublish)+len(r.AllowSubscribe)+len(r.DenyPublish)+len(r.DenySubscribe) == 0 &&
		r.MaxConnections+r.MaxSubscriptions+int(r.MaxPayload) == 0 {
		r.MaxConnections = 1 // a rule with nothing in it is an error
	}
	return r
}

func genIdentity(t *rapid.T) *Identity {
	id := &Identity{Transport: "tcp"}
	if rapid.Bool().Draw(t, "local") {
		id.Transport, id.Local = "unix", true
		id.UID = rapid.SampledFrom([]uint32{0, 7, 42, testOwner}).Draw(t, "uid")
		id.GID = rapid.SampledFrom([]uint32{7, 20, 99}).Draw(t, "gid")
		id.Groups = rapid.SliceOfN(rapid.SampledFrom([]uint32{7, 20, 50}), 0, 2).Draw(t, "groups")
		id.UserName = rapid.SampledFrom([]string{"", "alice", "bob"}).Draw(t, "user")
		id.GroupNames = rapid.SliceOfN(rapid.SampledFrom([]string{"staff", "wheel"}), 0, 2).Draw(t, "group_names")
	}
	id.CertCN = rapid.SampledFrom([]string{"", "web", "db"}).Draw(t, "cert")
	id.Login = rapid.SampledFrom([]string{"", "web"}).Draw(t, "login")
	id.Token = rapid.SampledFrom([]string{"", "ci"}).Draw(t, "token")
	id.Anonymous = rapid.Bool().Draw(t, "anonymous")
	return id
}

// propChecks is the number of cases TestEvaluatorMatchesReference runs
// unless -rapid.checks says otherwise: 100,000 in a few seconds, or a
// fifth of that under the race detector, which slows this single
// goroutine tenfold and has nothing to find in it.
func propChecks() int {
	if raceEnabled {
		return 20_000
	}
	return 100_000
}

func TestEvaluatorMatchesReference(t *testing.T) {
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "rapid.checks" })
	if !explicit {
		f := flag.Lookup("rapid.checks")
		old := f.Value.String()
		f.Value.Set(fmt.Sprint(propChecks()))
		defer f.Value.Set(old)
	}
	var cases, pubs, subs, delivers, filtered, allowed, allowedSubs atomic.Int64
	rapid.Check(t, func(t *rapid.T) {
		file := &File{
			Users:  []UserSpec{{Name: "web", Password: testHash}},
			Tokens: []TokenSpec{{Name: "ci", Token: "x"}},
			Rules:  rapid.SliceOfN(rapid.Custom(genRule), 0, 4).Draw(t, "rules"),
		}
		p, err := Compile("gen.toml", nil, file)
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		p = p.WithOwner(testOwner)
		id := genIdentity(t)
		g, ref := p.Grant(id), newRefGrant(file.Rules, id, testOwner)
		cases.Add(1)

		if g.Empty() != ref.empty() || g.Unrestricted() != ref.unrestricted() || g.Limits() != ref.limits {
			t.Fatalf("grant: Empty %v Unrestricted %v Limits %+v; reference %v %v %+v",
				g.Empty(), g.Unrestricted(), g.Limits(), ref.empty(), ref.unrestricted(), ref.limits)
		}
		switch op := rapid.SampledFrom([]string{"pub", "sub", "deliver"}).Draw(t, "op"); op {
		case "pub":
			pubs.Add(1)
			subj := genLiteral(t)
			d := g.Publish(subj)
			if d.Allowed {
				allowed.Add(1)
			}
			if want := ref.publish(subj); d.Allowed != want {
				t.Fatalf("Publish(%q) = %v, reference %v", subj, d, want)
			}
			checkExplanation(t, d, subj, "publish", func(p string) bool {
				return refMatch(strings.Split(p, "."), strings.Split(subj, "."))
			})
			if again := g.Publish(subj); again != d {
				t.Fatalf("Publish(%q) from the cache = %v, first %v", subj, again, d)
			}
		case "sub":
			subs.Add(1)
			pat := genPattern(t, "sub")
			d := g.Subscribe(pat)
			allowed, filter := ref.subscribe(pat)
			if d.Allowed != allowed || d.Filter != filter {
				t.Fatalf("Subscribe(%q) = %v filter %v, reference %v filter %v", pat, d.Decision, d.Filter, allowed, filter)
			}
			if filter {
				filtered.Add(1)
			}
			if allowed {
				allowedSubs.Add(1)
			}
			checkExplanation(t, d.Decision, pat, "subscribe", func(p string) bool { return refCovers(p, pat) })
		case "deliver":
			delivers.Add(1)
			subj := genLiteral(t)
			if got, want := g.Deliver(subj), ref.deliver(subj); got != want {
				t.Fatalf("Deliver(%q) = %v, reference %v", subj, got, want)
			}
		}
	})
	t.Logf("checked %d cases against the reference: 0 disagreements; %d publish (%d allowed), %d subscribe (%d allowed, %d filtered), %d deliver",
		cases.Load(), pubs.Load(), allowed.Load(), subs.Load(), allowedSubs.Load(), filtered.Load(), delivers.Load())
}

// checkExplanation checks that a decision names a rule key of the right
// kind whose pattern decides the case.
func checkExplanation(t *rapid.T, d Decision, what, op string, decides func(p string) bool) {
	switch {
	case d.Allowed && (d.Rule == nil || d.Rule.Key != "allow_"+op):
		t.Fatalf("%s %q allowed by %+v", op, what, d.Rule)
	case !d.Allowed && d.Rule != nil && d.Rule.Key != "deny_"+op:
		t.Fatalf("%s %q denied by %+v", op, what, d.Rule)
	case d.Rule != nil && !decides(d.Pattern):
		t.Fatalf("%s %q: the decision's pattern %q does not decide it", op, what, d.Pattern)
	case d.Rule == nil && d.Pattern != "":
		t.Fatalf("%s %q: pattern %q without a rule", op, what, d.Pattern)
	}
}

func TestReferenceMatchers(t *testing.T) {
	// The reference itself, on cases worked out by hand.
	for _, tc := range []struct {
		a, s            string
		covers, overlap bool
	}{
		{">", "a.*", true, true},
		{"a.>", "a", false, false},
		{"a.*", "a.>", false, true},
		{"*.b", "a.*", false, true},
		{"a.b", "a.b", true, true},
		{"a.*.>", "a.b.$SB", true, true},
		{"a.*", "b.*", false, false},
		{"*", "*.*", false, false},
	} {
		if refCovers(tc.a, tc.s) != tc.covers || refOverlaps(tc.a, tc.s) != tc.overlap {
			t.Errorf("reference covers(%q, %q) = %v overlaps %v", tc.a, tc.s, refCovers(tc.a, tc.s), refOverlaps(tc.a, tc.s))
		}
		a, s := strings.Split(tc.a, "."), strings.Split(tc.s, ".")
		if covers(a, s) != tc.covers || overlaps(a, s) != tc.overlap {
			t.Errorf("covers(%q, %q) = %v overlaps %v", tc.a, tc.s, covers(a, s), overlaps(a, s))
		}
	}
}
