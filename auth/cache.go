package auth

import (
	"hash/maphash"
	"math/rand/v2"
	"sync/atomic"
)

// The decision cache of a Grant is set-associative: cacheBuckets buckets of
// cacheWays slots. A subject hashes to one bucket and may sit in any of its
// slots; when all are taken a random one is evicted. Slots are atomic
// pointers to immutable entries, so a lookup takes no lock and writes
// nothing shared, and concurrent checks of a hot subject do not contend.
// Decisions never change (a Grant is immutable), so there is nothing to
// invalidate.
const (
	cacheWays    = 4
	cacheBuckets = 1024 // a power of two
	// cacheMaxKey is the longest subject cached: longer ones are checked
	// each time, so the cache of one Grant holds at most about
	// cacheWays*cacheBuckets*cacheMaxKey bytes of subjects.
	cacheMaxKey = 256
)

type cacheEntry[V any] struct {
	hash uint64
	key  string
	val  V
}

type cacheTable[V any] [cacheBuckets][cacheWays]atomic.Pointer[cacheEntry[V]]

type cache[V any] struct {
	seed maphash.Seed
	// table is allocated by the first put: most Grants are never asked.
	table atomic.Pointer[cacheTable[V]]
}

func newCache[V any]() *cache[V] { return &cache[V]{seed: maphash.MakeSeed()} }

func (c *cache[V]) get(key string) (v V, h uint64, ok bool) {
	h = maphash.String(c.seed, key)
	t := c.table.Load()
	if t == nil {
		return v, h, false
	}
	b := &t[h&(cacheBuckets-1)]
	for i := range b {
		if e := b[i].Load(); e != nil && e.hash == h && e.key == key {
			return e.val, h, true
		}
	}
	return v, h, false
}

func (c *cache[V]) put(key string, h uint64, v V) {
	if len(key) > cacheMaxKey {
		return
	}
	t := c.table.Load()
	if t == nil {
		c.table.CompareAndSwap(nil, new(cacheTable[V]))
		t = c.table.Load()
	}
	b := &t[h&(cacheBuckets-1)]
	free := -1
	for i := range b {
		e := b[i].Load()
		if e == nil {
			if free < 0 {
				free = i
			}
			continue
		}
		if e.hash == h && e.key == key {
			return
		}
	}
	if free < 0 {
		free = rand.IntN(cacheWays)
	}
	b[free].Store(&cacheEntry[V]{hash: h, key: key, val: v})
}

// len counts the cached entries (for tests).
func (c *cache[V]) len() int {
	t := c.table.Load()
	if t == nil {
		return 0
	}
	n := 0
	for bi := range t {
		for i := range t[bi] {
			if t[bi][i].Load() != nil {
				n++
			}
		}
	}
	return n
}
