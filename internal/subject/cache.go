package subject

import (
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync/atomic"
)

// The result cache is set-associative: cacheBuckets buckets of cacheWays
// slots, cacheBuckets*cacheWays = 4096 entries in all. A literal subject
// hashes to one bucket and may sit in any of its slots; when all are taken a
// random one is evicted. Slots are atomic pointers to immutable entries, so a
// lookup takes no lock and writes nothing shared: concurrent Match calls on
// a hot subject do not contend.
//
// Writers: a Match that missed stores its result while holding Sublist.mu
// for reading, and Insert and Remove clear affected entries while holding it
// for writing. So every entry in the cache was computed from the current
// trie: a result computed before an Insert is either stored before the
// Insert takes the lock (and then cleared by it) or not at all.
const (
	cacheWays    = 4
	cacheBuckets = 1024 // a power of two
	// CacheSize is the number of literal subjects whose results a Sublist
	// keeps.
	CacheSize = cacheWays * cacheBuckets
)

// entry is one cached result; it is never modified after it is published.
type entry[T comparable] struct {
	hash uint64
	key  string
	res  *Result[T]
}

type bucket[T comparable] [cacheWays]atomic.Pointer[entry[T]]

type cache[T comparable] struct {
	seed maphash.Seed
	// table is allocated by the first put, so that a Sublist that is never
	// matched against (or many small ones) does not pay for it.
	table atomic.Pointer[[cacheBuckets]bucket[T]]
}

func newCache[T comparable]() cache[T] {
	return cache[T]{seed: maphash.MakeSeed()}
}

func (c *cache[T]) hash(b []byte) uint64 { return maphash.Bytes(c.seed, b) }

func bucketOf[T comparable](t *[cacheBuckets]bucket[T], h uint64) *bucket[T] {
	return &t[h&(cacheBuckets-1)]
}

// get returns the cached result for subj, whose hash is h, or nil.
func (c *cache[T]) get(subj []byte, h uint64) *Result[T] {
	t := c.table.Load()
	if t == nil {
		return nil
	}
	b := bucketOf(t, h)
	for i := range b {
		// string(subj) in a comparison does not allocate.
		if e := b[i].Load(); e != nil && e.hash == h && e.key == string(subj) {
			return e.res
		}
	}
	return nil
}

// put caches res for subj. The caller holds Sublist.mu for reading.
func (c *cache[T]) put(subj []byte, h uint64, res *Result[T]) {
	t := c.table.Load()
	if t == nil {
		// Concurrent first puts race to install a table; one wins.
		c.table.CompareAndSwap(nil, new([cacheBuckets]bucket[T]))
		t = c.table.Load()
	}
	b := bucketOf(t, h)
	free := -1
	for i := range b {
		e := b[i].Load()
		if e == nil {
			if free < 0 {
				free = i
			}
			continue
		}
		if e.hash == h && e.key == string(subj) {
			return // another Match stored the same result meanwhile
		}
	}
	if free < 0 {
		free = rand.IntN(cacheWays)
	}
	b[free].Store(&entry[T]{hash: h, key: string(subj), res: res})
}

// invalidate clears every cached result that the subscription subject filter
// matches. The caller holds Sublist.mu for writing.
func (c *cache[T]) invalidate(filter string) {
	t := c.table.Load()
	if t == nil {
		return
	}
	if isLiteral(filter) {
		// Only the entry for the subject itself can be affected.
		h := maphash.String(c.seed, filter)
		b := bucketOf(t, h)
		for i := range b {
			if e := b[i].Load(); e != nil && e.hash == h && e.key == filter {
				b[i].Store(nil)
			}
		}
		return
	}
	ftoks := strings.Split(filter, ".")
	for bi := range t {
		b := &t[bi]
		for i := range b {
			if e := b[i].Load(); e != nil && matchTokens(ftoks, e.key) {
				b[i].Store(nil)
			}
		}
	}
}

// len counts the cached results.
func (c *cache[T]) len() int {
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
