package auth

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"switchboard/internal/subject"
)

// Grant is what one identity may do: the union of the rules that apply to
// it. It is immutable and safe for concurrent use; get one from
// [Policy.Grant].
type Grant struct {
	principals []string
	allowPub   []entry
	denyPub    []entry
	allowSub   []entry
	denySub    []entry
	limits     Limits
	empty      bool
	unrestrict bool

	pub     *cache[Decision]
	deliver *cache[bool]
}

// entry is one pattern of a grant and the rule key it came from.
type entry struct {
	pat pattern
	ref *RuleRef
}

// Limits are the limits of a grant; 0 means the policy sets none.
type Limits struct{ MaxConnections, MaxSubscriptions, MaxPayload int }

// Decision explains one check.
type Decision struct {
	Allowed bool
	Rule    *RuleRef // the rule that decided: the deny that matched, or the allow that matched; nil for "no rule allows it"
	Pattern string   // the pattern of that rule that matched, "" if Rule is nil
}

// SubDecision is the decision on a subscription. Filter reports that the
// subscription is allowed but some deny_subscribe pattern overlaps it: each
// message must pass [Grant.Deliver] before it is delivered on it.
type SubDecision struct {
	Decision
	Filter bool
}

// RuleRef identifies a rule key of a policy, for messages. RuleRefs are
// shared by all decisions and must not be modified.
type RuleRef struct {
	File    string // policy file name, "built-in" for the owner rule
	Line    int    // line of the rule's [[rule]] header, 0 if unknown
	Index   int    // 1-based rule number, 0 for the built-in owner rule
	Name    string // the rule's name, if it has one
	Key     string // "allow_publish", "deny_subscribe", ...
	KeyLine int    // line of Key within the rule, 0 if unknown
}

// String names the rule and where it is: `rule 2 "web" (policy.toml:9)`,
// with the line of the key if known, else of the rule; or "the built-in
// owner rule".
func (r *RuleRef) String() string {
	if r == nil {
		return "no rule"
	}
	if r.Index == 0 {
		return "the built-in owner rule"
	}
	var b strings.Builder
	b.WriteString("rule ")
	b.WriteString(strconv.Itoa(r.Index))
	if r.Name != "" {
		b.WriteString(" ")
		b.WriteString(strconv.Quote(r.Name))
	}
	b.WriteString(" (")
	b.WriteString(r.File)
	if l := r.location(); l > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(l))
	}
	b.WriteString(")")
	return b.String()
}

// Location is the line of the deciding key if known, else of the rule's
// header; 0 for the built-in rule or when unknown.
func (r *RuleRef) Location() int {
	return r.location()
}

func (r *RuleRef) location() int {
	if r.KeyLine > 0 {
		return r.KeyLine
	}
	return r.Line
}

// String explains d: `allowed by rule 1 (policy.toml:3) allow_publish
// "public.>"`, `denied by rule 2 (policy.toml:9) deny_subscribe
// "secrets.>"` or `denied: no rule allows it`.
func (d Decision) String() string {
	verdict := "denied"
	if d.Allowed {
		verdict = "allowed"
	}
	if d.Rule == nil {
		if d.Allowed {
			return verdict
		}
		return verdict + ": no rule allows it"
	}
	return verdict + " by " + d.Rule.String() + " " + d.Rule.Key + " " + strconv.Quote(d.Pattern)
}

// String is the Decision's explanation, with a note when the subscription
// is filtered.
func (d SubDecision) String() string {
	s := d.Decision.String()
	if d.Filter {
		s += " (filtered: messages on subjects a deny_subscribe pattern matches are not delivered)"
	}
	return s
}

// Principals returns the identity principals the grant was computed for.
// The slice is shared and must not be modified.
func (g *Grant) Principals() []string { return g.principals }

// Limits returns the smallest positive limits among the rules that apply.
func (g *Grant) Limits() Limits { return g.limits }

// Empty reports whether the grant allows nothing at all: no allow pattern
// for publishing or subscribing. The hub refuses such identities.
func (g *Grant) Empty() bool { return g.empty }

// Unrestricted reports whether the grant allows every publish (including
// "$SB.>") and every subscription and denies nothing, so that a hub may
// skip per-message checks.
func (g *Grant) Unrestricted() bool { return g.unrestrict }

var noRule = Decision{}

// Publish decides whether the identity may publish to the literal subject.
// An invalid subject is denied. Decisions are cached per subject.
func (g *Grant) Publish(subj string) Decision {
	d, h, ok := g.pub.get(subj)
	if ok {
		return d
	}
	d = g.publish(subj)
	g.pub.put(subj, h, d)
	return d
}

// PublishUncached is Publish without the decision cache, for subjects
// seen once, such as the reply subjects of requests: they would only
// evict the subjects a connection publishes to again and again.
func (g *Grant) PublishUncached(subj string) Decision {
	if d, _, ok := g.pub.get(subj); ok {
		return d
	}
	return g.publish(subj)
}

func (g *Grant) publish(subj string) Decision {
	if !subject.ValidPublish([]byte(subj)) {
		return noRule
	}
	for _, e := range g.denyPub {
		if matchLit(e.pat.toks, subj) {
			return Decision{Rule: e.ref, Pattern: e.pat.s}
		}
	}
	isReserved := firstToken(subj) == reserved
	for _, e := range g.allowPub {
		if isReserved && e.pat.toks[0] != reserved {
			continue
		}
		if matchLit(e.pat.toks, subj) {
			return Decision{Allowed: true, Rule: e.ref, Pattern: e.pat.s}
		}
	}
	return noRule
}

// Subscribe decides whether the identity may subscribe to pattern (queue
// subscriptions alike). An invalid pattern is denied.
func (g *Grant) Subscribe(pat string) SubDecision {
	if !subject.ValidSubscribe([]byte(pat)) {
		return SubDecision{}
	}
	s := strings.Split(pat, ".")
	for _, e := range g.denySub {
		if covers(e.pat.toks, s) {
			return SubDecision{Decision: Decision{Rule: e.ref, Pattern: e.pat.s}}
		}
	}
	var d SubDecision
	for _, e := range g.allowSub {
		if covers(e.pat.toks, s) {
			d.Decision = Decision{Allowed: true, Rule: e.ref, Pattern: e.pat.s}
			break
		}
	}
	if !d.Allowed {
		return d
	}
	for _, e := range g.denySub {
		if overlaps(e.pat.toks, s) {
			d.Filter = true
			break
		}
	}
	return d
}

// Deliver reports whether a message on the literal subject may be
// delivered on a filtered subscription: false iff a deny_subscribe pattern
// matches it. Results are cached per subject.
func (g *Grant) Deliver(subj string) bool {
	if len(g.denySub) == 0 {
		return true
	}
	ok, h, hit := g.deliver.get(subj)
	if hit {
		return ok
	}
	ok = true
	for _, e := range g.denySub {
		if matchLit(e.pat.toks, subj) {
			ok = false
			break
		}
	}
	g.deliver.put(subj, h, ok)
	return ok
}

// Grant returns what id may do under p. Grants are cached per distinct
// principal set and owner status, so identities alike share one Grant and
// its decision cache.
func (p *Policy) Grant(id *Identity) *Grant {
	prins := id.Principals()
	owner := id != nil && id.Local && (id.UID == 0 || id.UID == p.owner)
	key := grantKey(prins, owner)
	if g := p.grants.get(key); g != nil {
		return g
	}
	g := p.compute(prins, owner)
	return p.grants.put(key, g)
}

func grantKey(prins []string, owner bool) string {
	var b strings.Builder
	if owner {
		b.WriteString("owner|")
	}
	for _, s := range prins {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String()
}

func (p *Policy) compute(prins []string, owner bool) *Grant {
	g := &Grant{principals: prins, pub: newCache[Decision](), deliver: newCache[bool]()}
	var lists [numLists][]entry
	var seen [numLists]map[string]bool
	add := func(k int, es []entry) {
		for _, e := range es {
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			if !seen[k][e.pat.s] {
				seen[k][e.pat.s] = true
				lists[k] = append(lists[k], e)
			}
		}
	}
	if owner {
		add(allowPub, ownerPub)
		add(allowSub, ownerSub)
	}
	for _, r := range p.rules {
		if !slices.ContainsFunc(r.who, func(w string) bool { _, ok := slices.BinarySearch(prins, w); return ok }) {
			continue
		}
		for k := range lists {
			add(k, r.lists[k])
		}
		g.limits.MaxConnections = minPositive(g.limits.MaxConnections, r.limits.MaxConnections)
		g.limits.MaxSubscriptions = minPositive(g.limits.MaxSubscriptions, r.limits.MaxSubscriptions)
		g.limits.MaxPayload = minPositive(g.limits.MaxPayload, r.limits.MaxPayload)
	}
	g.allowPub, g.allowSub, g.denyPub, g.denySub = lists[allowPub], lists[allowSub], lists[denyPub], lists[denySub]
	g.empty = len(g.allowPub) == 0 && len(g.allowSub) == 0
	g.unrestrict = seen[allowPub][">"] && seen[allowPub]["$SB.>"] && seen[allowSub][">"] &&
		len(g.denyPub) == 0 && len(g.denySub) == 0
	return g
}

func minPositive(a, b int) int {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// grantCache holds the Grants of a Policy, at most maxGrants of them; when
// it is full it starts over (the Grants stay valid for whoever holds them).
type grantCache struct {
	mu sync.Mutex
	m  map[string]*Grant
}

const maxGrants = 1024

func newGrantCache() *grantCache { return &grantCache{m: map[string]*Grant{}} }

func (c *grantCache) get(key string) *Grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// put stores g unless another Grant for key got there first, and returns
// the one stored.
func (c *grantCache) put(key string, g *Grant) *Grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[key]; old != nil {
		return old
	}
	if len(c.m) >= maxGrants {
		clear(c.m)
	}
	c.m[key] = g
	return g
}

// PublishAll reports whether the identity may publish to every subject the
// pattern matches: an allow rule covers it and no deny rule overlaps it.
// The hub asks this before it lets a publisher write a whole pattern into a
// shared-memory ring, where it no longer sees each subject. Patterns under
// "$SB." are never granted whole.
func (g *Grant) PublishAll(pat string) bool {
	if !subject.ValidSubscribe([]byte(pat)) || firstToken(pat) == reserved {
		return false
	}
	if g.unrestrict {
		return true
	}
	s := strings.Split(pat, ".")
	for _, e := range g.denyPub {
		if overlaps(e.pat.toks, s) {
			return false
		}
	}
	for _, e := range g.allowPub {
		if e.pat.toks[0] != reserved && covers(e.pat.toks, s) {
			return true
		}
	}
	return false
}
