package auth

import (
	"strconv"
	"testing"
)

const benchPolicy = `
[[rule]]
who = ["uid:65534"]
allow_publish = ["public.>", "orders.*.new", "metrics.>"]
allow_subscribe = ["public.>"]
deny_publish = ["public.admin.>"]

[[rule]]
who = ["*"]
deny_subscribe = ["secrets.>"]
`

func benchGrant(b *testing.B) *Grant {
	p, err := Parse("bench.toml", []byte(benchPolicy))
	if err != nil {
		b.Fatal(err)
	}
	return p.Grant(local(65534))
}

// BenchmarkGrantPublishCached is the check of a restricted client's PUB
// to a subject it published to before: a hash and a cache probe.
func BenchmarkGrantPublishCached(b *testing.B) {
	g := benchGrant(b)
	subjects := []string{"orders.eu.new", "public.news.today", "metrics.cpu.host1", "public.admin.x"}
	for _, s := range subjects {
		g.Publish(s)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.Publish(subjects[i&3])
		i++
	}
}

// BenchmarkGrantPublishCachedParallel is the same from all CPUs at once.
func BenchmarkGrantPublishCachedParallel(b *testing.B) {
	g := benchGrant(b)
	g.Publish("orders.eu.new")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !g.Publish("orders.eu.new").Allowed {
				b.Fatal("denied")
			}
		}
	})
}

// BenchmarkGrantPublishUncached is a check of a subject never seen
// before: every pattern of the grant is tried, then the result is cached.
func BenchmarkGrantPublishUncached(b *testing.B) {
	g := benchGrant(b)
	subjects := make([]string, 1<<16)
	for i := range subjects {
		subjects[i] = "orders." + strconv.Itoa(i) + ".new"
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Past the first round every subject is in the cache or was
		// evicted; use the evaluation itself to keep it uncached.
		g.publish(subjects[i&(len(subjects)-1)])
		i++
	}
}

func BenchmarkGrantSubscribe(b *testing.B) {
	g := benchGrant(b)
	b.ReportAllocs()
	for b.Loop() {
		g.Subscribe("public.*.x")
	}
}

func BenchmarkPolicyGrantCached(b *testing.B) {
	p, err := Parse("bench.toml", []byte(benchPolicy))
	if err != nil {
		b.Fatal(err)
	}
	id := &Identity{Transport: "unix", Local: true, UID: 65534, GID: 65534, Groups: []uint32{65534, 100}, UserName: "nobody"}
	b.ReportAllocs()
	for b.Loop() {
		p.Grant(id)
	}
}
