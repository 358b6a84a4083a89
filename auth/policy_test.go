package auth

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// issueExample is the policy from the issue, verbatim.
const issueExample = `[[rule]]
who = ["uid:65534"]
allow_publish = ["public.>"]
allow_subscribe = ["public.>"]

[[rule]]
who = ["*"]
deny_subscribe = ["secrets.>"]
`

const testOwner = 1000

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse("policy.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p.WithOwner(testOwner)
}

func local(uid uint32) *Identity {
	return &Identity{Transport: "unix", Local: true, UID: uid, GID: uid}
}

func wantPub(t *testing.T, g *Grant, subj string, allowed bool, explain string) {
	t.Helper()
	d := g.Publish(subj)
	if d.Allowed != allowed || d.String() != explain {
		t.Errorf("Publish(%q) = %v, want %v, %q", subj, d, allowed, explain)
	}
}

func wantSub(t *testing.T, g *Grant, pat string, allowed, filter bool, explain string) {
	t.Helper()
	d := g.Subscribe(pat)
	if d.Allowed != allowed || d.Filter != filter || d.Decision.String() != explain {
		t.Errorf("Subscribe(%q) = %v filter %v, want %v filter %v, %q", pat, d.Decision, d.Filter, allowed, filter, explain)
	}
}

func TestIssueExample(t *testing.T) {
	p := mustParse(t, issueExample)
	if p.Rules() != 2 || p.NeedsNames() || p.AllowAnonymous() {
		t.Fatalf("Rules %d NeedsNames %v AllowAnonymous %v", p.Rules(), p.NeedsNames(), p.AllowAnonymous())
	}

	nobody := p.Grant(local(65534))
	if nobody.Empty() || nobody.Unrestricted() {
		t.Fatalf("nobody: Empty %v Unrestricted %v", nobody.Empty(), nobody.Unrestricted())
	}
	wantPub(t, nobody, "public.x", true, `allowed by rule 1 (policy.toml:3) allow_publish "public.>"`)
	wantPub(t, nobody, "public.x.y", true, `allowed by rule 1 (policy.toml:3) allow_publish "public.>"`)
	wantPub(t, nobody, "public", false, `denied: no rule allows it`)
	wantPub(t, nobody, "secrets.x", false, `denied: no rule allows it`)
	wantPub(t, nobody, "$SB.x", false, `denied: no rule allows it`)
	wantSub(t, nobody, "public.>", true, false, `allowed by rule 1 (policy.toml:4) allow_subscribe "public.>"`)
	wantSub(t, nobody, "public.*.x", true, false, `allowed by rule 1 (policy.toml:4) allow_subscribe "public.>"`)
	wantSub(t, nobody, "secrets.x", false, false, `denied by rule 2 (policy.toml:8) deny_subscribe "secrets.>"`)
	wantSub(t, nobody, ">", false, false, `denied: no rule allows it`)
	wantSub(t, nobody, "*.x", false, false, `denied: no rule allows it`)

	stranger := p.Grant(local(4242))
	if !stranger.Empty() {
		t.Errorf("a stranger uid has a grant: %v", stranger.Principals())
	}
	wantPub(t, stranger, "public.x", false, `denied: no rule allows it`)

	// A network client claiming uid 0 is not the owner.
	if g := p.Grant(&Identity{Transport: "tcp", UID: 0, Login: ""}); !g.Empty() {
		t.Errorf("non-local uid 0 got a grant")
	}

	for _, uid := range []uint32{0, testOwner} {
		g := p.Grant(local(uid))
		if g.Empty() || g.Unrestricted() {
			t.Fatalf("uid %d: Empty %v Unrestricted %v (a deny applies)", uid, g.Empty(), g.Unrestricted())
		}
		wantPub(t, g, "anything.at.all", true, `allowed by the built-in owner rule allow_publish ">"`)
		wantPub(t, g, "$SB.q.x", true, `allowed by the built-in owner rule allow_publish "$SB.>"`)
		wantPub(t, g, "secrets.x", true, `allowed by the built-in owner rule allow_publish ">"`)
		wantSub(t, g, ">", true, true, `allowed by the built-in owner rule allow_subscribe ">"`)
		wantSub(t, g, "public.x", true, false, `allowed by the built-in owner rule allow_subscribe ">"`)
		wantSub(t, g, "secrets.x", false, false, `denied by rule 2 (policy.toml:8) deny_subscribe "secrets.>"`)
		wantSub(t, g, "secrets.>", false, false, `denied by rule 2 (policy.toml:8) deny_subscribe "secrets.>"`)
		if g.Deliver("secrets.a") || !g.Deliver("public.a") || !g.Deliver("secrets") {
			t.Errorf("uid %d: Deliver wrong", uid)
		}
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy().WithOwner(testOwner)
	if on, ttl := p.Responses(); !on || ttl.String() != "1m0s" || p.AllowAnonymous() || p.Rules() != 0 || p.HasCredentials() {
		t.Fatalf("defaults: responses %v %v anonymous %v rules %d", on, ttl, p.AllowAnonymous(), p.Rules())
	}
	for _, uid := range []uint32{0, testOwner} {
		if g := p.Grant(local(uid)); !g.Unrestricted() || g.Empty() {
			t.Errorf("uid %d: Unrestricted %v", uid, g.Unrestricted())
		}
	}
	if g := p.Grant(local(7)); !g.Empty() {
		t.Errorf("uid 7 has a grant under the default policy")
	}
	if g := p.Grant(&Identity{Transport: "tcp", Login: "x"}); !g.Empty() {
		t.Errorf("network client has a grant under the default policy")
	}
	if DefaultPolicy().WithOwner(7).Owner() != 7 || p.Owner() != testOwner {
		t.Errorf("WithOwner")
	}
	// WithOwner does not share grants with the original.
	if !p.WithOwner(7).Grant(local(7)).Unrestricted() || !p.Grant(local(7)).Empty() {
		t.Errorf("WithOwner shares the grant cache")
	}
}

func TestReservedPrefix(t *testing.T) {
	p := mustParse(t, `
[[rule]]
who = ["uid:1"]
allow_publish = [">", "*.x", "$SB.own.*"]
allow_subscribe = [">"]

[[rule]]
who = ["uid:2"]
allow_publish = ["*.>"]
deny_publish = ["$SB.own.secret"]
`)
	g := p.Grant(local(1))
	wantPub(t, g, "a.x", true, `allowed by rule 1 (policy.toml:4) allow_publish ">"`)
	wantPub(t, g, "$SB", false, `denied: no rule allows it`)
	wantPub(t, g, "$SB.x", false, `denied: no rule allows it`)
	wantPub(t, g, "$SB.other.y", false, `denied: no rule allows it`)
	wantPub(t, g, "$SB.own.y", true, `allowed by rule 1 (policy.toml:4) allow_publish "$SB.own.*"`)
	wantPub(t, g, "x.$SB", true, `allowed by rule 1 (policy.toml:4) allow_publish ">"`)
	wantPub(t, g, "$SBX.y", true, `allowed by rule 1 (policy.toml:4) allow_publish ">"`)
	// Subscribing has no reservation.
	wantSub(t, g, "$SB.>", true, false, `allowed by rule 1 (policy.toml:5) allow_subscribe ">"`)
	if g.Unrestricted() {
		t.Errorf("> without $SB.> is unrestricted")
	}

	g = p.Grant(local(2))
	wantPub(t, g, "$SB.own.y", false, `denied: no rule allows it`)
	wantPub(t, g, "$SB.own.secret", false, `denied by rule 2 (policy.toml:10) deny_publish "$SB.own.secret"`)

	// The owner may publish into $SB, but a deny still wins.
	g = p.Grant(local(0))
	wantPub(t, g, "$SB.own.y", true, `allowed by the built-in owner rule allow_publish "$SB.>"`)
	p2 := mustParse(t, "[[rule]]\nwho = [\"*\"]\ndeny_publish = [\"$SB.>\"]\n")
	wantPub(t, p2.Grant(local(0)), "$SB.x", false, `denied by rule 1 (policy.toml:3) deny_publish "$SB.>"`)
	wantPub(t, p2.Grant(local(0)), "x", true, `allowed by the built-in owner rule allow_publish ">"`)
}

func TestFilterSubscriptions(t *testing.T) {
	p := mustParse(t, `
[[rule]]
name = "app"
who = ["group:staff", "uid:5"]
allow_subscribe = ["a.>", "b.*"]
deny_subscribe = ["a.b.*", "b.secret"]
`)
	g := p.Grant(local(5))
	const allowA = `allowed by rule 1 "app" (policy.toml:5) allow_subscribe "a.>"`
	wantSub(t, g, "a.>", true, true, allowA)
	wantSub(t, g, "a.*.c", true, true, allowA)
	wantSub(t, g, "a.c", true, false, allowA)
	wantSub(t, g, "a.b.>", true, true, allowA)
	wantSub(t, g, "a.b.c.d", true, false, allowA)
	wantSub(t, g, "a.b.c", false, false, `denied by rule 1 "app" (policy.toml:6) deny_subscribe "a.b.*"`)
	wantSub(t, g, "a.b.*", false, false, `denied by rule 1 "app" (policy.toml:6) deny_subscribe "a.b.*"`)
	wantSub(t, g, "b.*", true, true, `allowed by rule 1 "app" (policy.toml:5) allow_subscribe "b.*"`)
	wantSub(t, g, "b.>", false, false, `denied: no rule allows it`)
	wantSub(t, g, "a..b", false, false, `denied: no rule allows it`)
	for subj, want := range map[string]bool{"a.b.c": false, "a.b.c.d": true, "a.x": true, "b.secret": false, "b.public": true} {
		for range 2 { // the second answer comes from the cache
			if got := g.Deliver(subj); got != want {
				t.Errorf("Deliver(%q) = %v, want %v", subj, got, want)
			}
		}
	}
	if g.deliver.len() == 0 {
		t.Errorf("Deliver cached nothing")
	}
	// group:staff matches by the resolved name.
	if !p.NeedsNames() {
		t.Errorf("NeedsNames false with a group: principal")
	}
	named := &Identity{Local: true, UID: 77, GID: 50, GroupNames: []string{"staff"}}
	if p.Grant(named).Empty() {
		t.Errorf("group:staff did not match an identity in staff")
	}
	if !p.Grant(&Identity{Local: true, UID: 77, GID: 50}).Empty() {
		t.Errorf("group:staff matched an identity whose names were not resolved")
	}
}

func TestLimitsMinWins(t *testing.T) {
	p := mustParse(t, `
[[rule]]
who = ["uid:9"]
allow_publish = ["x"]
max_connections = 10
max_payload = "64KiB"

[[rule]]
who = ["gid:20"]
max_connections = 5
max_subscriptions = 100

[[rule]]
who = ["*"]
max_payload = 1000000
max_subscriptions = 0

[[rule]]
who = ["uid:10"]
max_connections = 1
`)
	id := local(9)
	id.Groups = []uint32{20}
	if got, want := p.Grant(id).Limits(), (Limits{MaxConnections: 5, MaxSubscriptions: 100, MaxPayload: 65536}); got != want {
		t.Errorf("Limits = %+v, want %+v", got, want)
	}
	if got, want := p.Grant(local(9)).Limits(), (Limits{MaxConnections: 10, MaxPayload: 65536}); got != want {
		t.Errorf("Limits = %+v, want %+v", got, want)
	}
	if got, want := p.Grant(local(11)).Limits(), (Limits{MaxPayload: 1000000}); got != want {
		t.Errorf("Limits = %+v, want %+v", got, want)
	}
}

func TestPrincipalMatching(t *testing.T) {
	p := mustParse(t, `
[[user]]
name = "web"
password = "`+testHash+`"

[[token]]
name = "ci"
token = "s3cret"

[[rule]]
who = ["uid:0007"]
allow_publish = ["uid"]
[[rule]]
who = ["gid:30"]
allow_publish = ["gid"]
[[rule]]
who = ["user:alice"]
allow_publish = ["user"]
[[rule]]
who = ["cert:web.example"]
allow_publish = ["cert"]
[[rule]]
who = ["login:web"]
allow_publish = ["login"]
[[rule]]
who = ["token:ci"]
allow_publish = ["token"]
[[rule]]
who = ["anonymous"]
allow_publish = ["anonymous"]
[[rule]]
who = ["user:no-such-user-on-this-machine"]
allow_publish = ["ghost"]
`)
	cases := []struct {
		id   *Identity
		want []string
	}{
		{&Identity{Local: true, UID: 7, GID: 1}, []string{"uid"}},
		{&Identity{Local: true, UID: 8, GID: 1, Groups: []uint32{30}}, []string{"gid"}},
		{&Identity{Local: true, UID: 8, GID: 30}, []string{"gid"}},
		{&Identity{Local: true, UID: 8, GID: 1, UserName: "alice"}, []string{"user"}},
		{&Identity{Transport: "tls", CertCN: "web.example"}, []string{"cert"}},
		{&Identity{Transport: "tcp", Login: "web"}, []string{"login"}},
		{&Identity{Transport: "tcp", Token: "ci"}, []string{"token"}},
		{&Identity{Transport: "tcp", Anonymous: true}, []string{"anonymous"}},
		{&Identity{Local: true, UID: 7, GID: 30, Login: "web"}, []string{"uid", "gid", "login"}},
		// Kernel ids do not count for a network client.
		{&Identity{Transport: "tcp", UID: 7, GID: 30, UserName: "alice"}, nil},
	}
	all := []string{"uid", "gid", "user", "cert", "login", "token", "anonymous", "ghost"}
	for _, tc := range cases {
		g := p.Grant(tc.id)
		for _, s := range all {
			want := false
			for _, w := range tc.want {
				want = want || w == s
			}
			if got := g.Publish(s).Allowed; got != want {
				t.Errorf("%v (%v): Publish(%q) = %v, want %v", tc.id, g.Principals(), s, got, want)
			}
		}
	}
}

func TestGrantCacheShared(t *testing.T) {
	p := mustParse(t, issueExample)
	a, b := p.Grant(local(65534)), p.Grant(&Identity{Local: true, UID: 65534, GID: 65534, PID: 99, Comm: "x"})
	if a != b {
		t.Errorf("identities with the same principals got different Grants")
	}
	if p.Grant(local(65534)) == p.Grant(local(5)) {
		t.Errorf("different identities share a Grant")
	}
	// Owner status is part of the key: uid 0 with the same principals as a
	// network identity cannot exist, but the owner uid on another policy
	// copy must not reuse a non-owner grant.
	q := p.WithOwner(65534)
	if !q.Grant(local(65534)).Publish("x").Allowed {
		t.Errorf("WithOwner(65534) grant is not the owner's")
	}
	for i := range maxGrants + 10 {
		p.Grant(local(uint32(100000 + i)))
	}
	if n := len(p.grants.m); n > maxGrants {
		t.Errorf("grant cache holds %d > %d", n, maxGrants)
	}
}

func TestPublishCacheBounded(t *testing.T) {
	p := mustParse(t, "[[rule]]\nwho=[\"*\"]\nallow_publish=[\"a.>\"]\ndeny_publish=[\"a.b\"]\n")
	g := p.Grant(local(3))
	for i := range 3 * cacheWays * cacheBuckets {
		subj := "a." + strings.Repeat("x", i%7+1) + "." + strconv.Itoa(i)
		if !g.Publish(subj).Allowed {
			t.Fatalf("Publish(%q) denied", subj)
		}
	}
	if n := g.pub.len(); n > cacheWays*cacheBuckets || n < cacheBuckets {
		t.Errorf("publish cache holds %d entries", n)
	}
	long := "a." + strings.Repeat("y", cacheMaxKey)
	before := g.pub.len()
	if !g.Publish(long).Allowed || g.pub.len() != before {
		t.Errorf("a long subject was cached")
	}
	if g.Publish("a.b").Allowed || g.Publish("a.b").Allowed {
		t.Errorf("a.b allowed")
	}
}

func TestDecisionString(t *testing.T) {
	ref := &RuleRef{File: "policy.toml", Line: 6, Index: 2, Key: "deny_subscribe", KeyLine: 9}
	cases := []struct {
		d    Decision
		want string
	}{
		{Decision{}, "denied: no rule allows it"},
		{Decision{Allowed: true, Rule: &RuleRef{File: "policy.toml", Line: 1, Index: 1, Key: "allow_publish", KeyLine: 2}, Pattern: "public.>"},
			`allowed by rule 1 (policy.toml:2) allow_publish "public.>"`},
		{Decision{Rule: ref, Pattern: "secrets.>"}, `denied by rule 2 (policy.toml:9) deny_subscribe "secrets.>"`},
		{Decision{Rule: &RuleRef{File: "p.toml", Line: 6, Index: 2, Name: "web", Key: "deny_publish"}, Pattern: "x"},
			`denied by rule 2 "web" (p.toml:6) deny_publish "x"`},
		{Decision{Rule: &RuleRef{File: "p.toml", Index: 3, Key: "deny_publish"}, Pattern: "x"},
			`denied by rule 3 (p.toml) deny_publish "x"`},
		{Decision{Allowed: true, Rule: ownerPubRef, Pattern: ">"}, `allowed by the built-in owner rule allow_publish ">"`},
	}
	for _, tc := range cases {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	sd := SubDecision{Decision{Allowed: true, Rule: ownerSubRef, Pattern: ">"}, true}
	if s := sd.String(); !strings.HasPrefix(s, `allowed by the built-in owner rule allow_subscribe ">" (filtered`) {
		t.Errorf("SubDecision.String() = %q", s)
	}
}

// TestConcurrentChecks runs checks from many goroutines at once (for the
// race detector) and compares them with answers computed alone.
func TestConcurrentChecks(t *testing.T) {
	p := mustParse(t, issueExample+"\n[[rule]]\nwho = [\"gid:5\"]\nallow_publish = [\"a.*\", \"$SB.x\"]\ndeny_publish = [\"a.b\"]\n")
	subjects := []string{"public.a", "public.b.c", "a.b", "a.c", "$SB.x", "secrets.x", "x"}
	for i := range 200 {
		subjects = append(subjects, "public."+strconv.Itoa(i))
	}
	type answer struct {
		pub, deliver bool
		sub          SubDecision
	}
	ids := []*Identity{local(65534), local(0), {Local: true, UID: 9, GID: 5}}
	want := map[int][]answer{}
	for i, id := range ids {
		g := p.WithOwner(testOwner).Grant(id) // a separate policy: nothing cached
		for _, s := range subjects {
			want[i] = append(want[i], answer{g.publish(s).Allowed, g.Deliver(s), g.Subscribe(s)})
		}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for round := range 50 {
				i := (w + round) % len(ids)
				g := p.Grant(ids[i])
				for j, s := range subjects {
					got := answer{g.Publish(s).Allowed, g.Deliver(s), g.Subscribe(s)}
					if got != want[i][j] {
						t.Errorf("identity %v, %q: %+v, want %+v", ids[i], s, got, want[i][j])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
