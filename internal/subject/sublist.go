package subject

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Errors returned by [Sublist.Insert].
var (
	ErrInvalidSubject = errors.New("subject: invalid subject")
	ErrInvalidQueue   = errors.New("subject: invalid queue group")
)

// Sublist maps subscription subjects to values of T. Safe for concurrent use.
//
// A subscription is a (subject, queue, value) triple; the subject may hold
// wildcards and queue is "" for a subscription outside any queue group.
// Subscriptions form a multiset: inserting the same triple twice stores it
// twice, and each Remove takes one copy away. The same value may be inserted
// under several subjects; a message whose subject matches two of them finds
// the value twice in its [Result], once per subscription, as NATS delivers
// per subscription. Removing duplicates, if wanted, is the caller's concern.
//
// Use [NewSublist]; the zero value is not ready for use.
type Sublist[T comparable] struct {
	// mu guards root and count. Match takes it for reading on a cache miss;
	// Insert and Remove take it for writing. Lock order: mu, then nothing
	// (the cache is lock-free).
	mu    sync.RWMutex
	root  *level[T]
	count int

	cache  cache[T]
	empty  *Result[T] // shared result for subjects nothing matches
	misses atomic.Uint64
}

// NewSublist returns an empty Sublist.
func NewSublist[T comparable]() *Sublist[T] {
	return &Sublist[T]{
		root:  new(level[T]),
		cache: newCache[T](),
		empty: new(Result[T]),
	}
}

// Result is what a literal subject matches. It is shared and must not be modified.
//
// The order of values within Plain and within each group, and the order of
// the groups, is unspecified.
type Result[T comparable] struct {
	Plain  []T   // subscribers without a queue group
	Groups [][]T // one slice per queue group; a message goes to one member of each
}

// Stats describes a Sublist at one moment.
type Stats struct {
	Subscriptions int    // as Count
	CacheEntries  int    // literal subjects whose results are cached, at most CacheSize
	CacheMisses   uint64 // Match calls that walked the trie, since NewSublist
}

// level is one token position of the trie: the literal tokens seen there
// and the two wildcard branches.
type level[T comparable] struct {
	nodes map[string]*node[T] // literal tokens; nil when empty
	pwc   *node[T]            // the '*' token
	fwc   *node[T]            // the '>' token; its next level is always nil
}

func (l *level[T]) isEmpty() bool {
	return len(l.nodes) == 0 && l.pwc == nil && l.fwc == nil
}

// node holds the subscriptions whose subject ends at this token, and the
// level for subjects that continue past it.
type node[T comparable] struct {
	next   *level[T]
	plain  multiset[T]
	queues map[string]*multiset[T] // nil when no queue subscriptions end here
}

func (n *node[T]) isEmpty() bool {
	return n.plain.n == 0 && len(n.queues) == 0 && (n.next == nil || n.next.isEmpty())
}

// Insert adds v under subject (wildcards allowed) and queue ("" = none).
//
// It returns [ErrInvalidSubject] if [ValidSubscribe] rejects subj and
// [ErrInvalidQueue] if queue is neither "" nor accepted by [ValidQueue].
func (s *Sublist[T]) Insert(subj, queue string, v T) error {
	if !valid(subj, true) {
		return ErrInvalidSubject
	}
	if queue != "" && !validQueue(queue) {
		return ErrInvalidQueue
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	l := s.root
	var n *node[T]
	for rest, more := subj, true; more; {
		var tok string
		tok, rest, more = cut(rest)
		n = l.child(tok)
		if more {
			if n.next == nil {
				n.next = new(level[T])
			}
			l = n.next
		}
	}
	if queue == "" {
		n.plain.add(v)
	} else {
		if n.queues == nil {
			n.queues = make(map[string]*multiset[T])
		}
		q := n.queues[queue]
		if q == nil {
			q = new(multiset[T])
			n.queues[queue] = q
		}
		q.add(v)
	}
	s.count++
	s.cache.invalidate(subj)
	return nil
}

// child returns the node for tok, creating it if needed.
func (l *level[T]) child(tok string) *node[T] {
	var p **node[T]
	switch tok {
	case "*":
		p = &l.pwc
	case ">":
		p = &l.fwc
	default:
		if n := l.nodes[tok]; n != nil {
			return n
		}
		n := new(node[T])
		if l.nodes == nil {
			l.nodes = make(map[string]*node[T])
		}
		l.nodes[tok] = n
		return n
	}
	if *p == nil {
		*p = new(node[T])
	}
	return *p
}

// Remove deletes v from subject/queue; it reports whether v was there.
//
// It removes one copy of the (subject, queue, v) subscription; subj and
// queue must be spelled as they were to Insert. Nodes of the trie left empty
// are freed, so churn does not grow memory.
func (s *Sublist[T]) Remove(subj, queue string, v T) bool {
	if !valid(subj, true) || (queue != "" && !validQueue(queue)) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.root.remove(subj, queue, v) {
		return false
	}
	s.count--
	s.cache.invalidate(subj)
	return true
}

// remove deletes v from the subscription subj (relative to l) and prunes the
// nodes it leaves empty. Recursion depth is the number of tokens.
func (l *level[T]) remove(subj, queue string, v T) bool {
	tok, rest, more := cut(subj)
	var n *node[T]
	switch tok {
	case "*":
		n = l.pwc
	case ">":
		n = l.fwc
	default:
		n = l.nodes[tok]
	}
	if n == nil {
		return false
	}
	if more {
		if n.next == nil || !n.next.remove(rest, queue, v) {
			return false
		}
		if n.next.isEmpty() {
			n.next = nil
		}
	} else if !n.removeSub(queue, v) {
		return false
	}
	if n.isEmpty() {
		switch tok {
		case "*":
			l.pwc = nil
		case ">":
			l.fwc = nil
		default:
			delete(l.nodes, tok)
			if len(l.nodes) == 0 {
				l.nodes = nil // let the map's memory go
			}
		}
	}
	return true
}

func (n *node[T]) removeSub(queue string, v T) bool {
	if queue == "" {
		return n.plain.remove(v)
	}
	q := n.queues[queue]
	if q == nil || !q.remove(v) {
		return false
	}
	if q.n == 0 {
		delete(n.queues, queue)
		if len(n.queues) == 0 {
			n.queues = nil
		}
	}
	return true
}

// Match returns the subscriptions matching the literal subject.
//
// subj should satisfy [ValidPublish]; for any other subject, including one
// with wildcards, Match returns an empty Result. The Result is shared by all
// callers matching the same subject and must not be modified; it never
// changes, and a Match after an Insert or Remove has returned sees its
// effect. A repeated Match on a cached subject does not allocate.
func (s *Sublist[T]) Match(subj []byte) *Result[T] {
	h := s.cache.hash(subj)
	if r := s.cache.get(subj, h); r != nil {
		return r
	}
	return s.matchSlow(subj, h)
}

// matchSlow walks the trie and caches the result.
func (s *Sublist[T]) matchSlow(subj []byte, h uint64) *Result[T] {
	if !valid(subj, false) {
		return s.empty // not cached: only valid subjects take cache space
	}
	s.misses.Add(1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	var buf [16]*node[T]
	nodes := collect(s.root, subj, buf[:0])
	r := s.empty
	if len(nodes) > 0 {
		r = build(nodes)
	}
	s.cache.put(subj, h, r)
	return r
}

// collect appends to out the nodes whose subscriptions match the rest subj
// of a literal subject, at level l. It visits only branches that can match,
// each trie node at most once, so its cost is bounded by the size of the
// matching part of the trie rather than by the number of subscriptions.
func collect[T comparable](l *level[T], subj []byte, out []*node[T]) []*node[T] {
	tok, rest, last := subj, []byte(nil), true
	for i, c := range subj {
		if c == sep {
			tok, rest, last = subj[:i], subj[i+1:], false
			break
		}
	}
	if l.fwc != nil {
		out = append(out, l.fwc) // '>' takes this token and all after it
	}
	if n := l.pwc; n != nil {
		out = descend(n, rest, last, out)
	}
	if n := l.nodes[string(tok)]; n != nil {
		out = descend(n, rest, last, out)
	}
	return out
}

func descend[T comparable](n *node[T], rest []byte, last bool, out []*node[T]) []*node[T] {
	if last {
		if n.plain.n > 0 || len(n.queues) > 0 {
			out = append(out, n)
		}
		return out
	}
	if n.next != nil {
		out = collect(n.next, rest, out)
	}
	return out
}

// build makes a fresh Result from the matched nodes, merging queue groups of
// the same name across nodes.
func build[T comparable](nodes []*node[T]) *Result[T] {
	nplain, nqueues := 0, 0
	for _, n := range nodes {
		nplain += n.plain.n
		nqueues += len(n.queues)
	}
	r := new(Result[T])
	if nplain > 0 {
		r.Plain = make([]T, 0, nplain)
		for _, n := range nodes {
			r.Plain = n.plain.appendTo(r.Plain)
		}
	}
	if nqueues == 0 {
		return r
	}
	r.Groups = make([][]T, 0, nqueues)
	index := make(map[string]int, nqueues) // queue name -> position in r.Groups
	for _, n := range nodes {
		for name, q := range n.queues {
			i, ok := index[name]
			if !ok {
				i = len(r.Groups)
				index[name] = i
				r.Groups = append(r.Groups, make([]T, 0, q.n))
			}
			r.Groups[i] = q.appendTo(r.Groups[i])
		}
	}
	return r
}

// Count returns the number of subscriptions.
func (s *Sublist[T]) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.count
}

// Stats returns counters describing s. CacheEntries is found by scanning
// the cache, so Stats is meant for metrics, not for every message.
func (s *Sublist[T]) Stats() Stats {
	return Stats{
		Subscriptions: s.Count(),
		CacheEntries:  s.cache.len(),
		CacheMisses:   s.misses.Load(),
	}
}

// smallSet is the size up to which a multiset is a plain slice; beyond it,
// a map keeps Remove cheap when many subscribers share one subject.
const smallSet = 32

// multiset holds the values subscribed at one node, with multiplicity.
type multiset[T comparable] struct {
	list   []T       // the values, while counts is nil
	counts map[T]int // value -> multiplicity, once the set has grown large
	n      int       // total, with multiplicity
}

func (m *multiset[T]) add(v T) {
	m.n++
	if m.counts != nil {
		m.counts[v]++
		return
	}
	if len(m.list) < smallSet {
		m.list = append(m.list, v)
		return
	}
	m.counts = make(map[T]int, 2*smallSet)
	for _, x := range m.list {
		m.counts[x]++
	}
	m.counts[v]++
	m.list = nil
}

func (m *multiset[T]) remove(v T) bool {
	if m.counts != nil {
		c, ok := m.counts[v]
		if !ok {
			return false
		}
		if c == 1 {
			delete(m.counts, v)
		} else {
			m.counts[v] = c - 1
		}
		m.n--
		if m.n == 0 {
			m.counts = nil
		}
		return true
	}
	for i, x := range m.list {
		if x == v {
			last := len(m.list) - 1
			m.list[i] = m.list[last]
			var zero T
			m.list[last] = zero // drop the reference
			m.list = m.list[:last]
			m.n--
			if m.n == 0 {
				m.list = nil
			}
			return true
		}
	}
	return false
}

// appendTo appends every value, with multiplicity, to dst.
func (m *multiset[T]) appendTo(dst []T) []T {
	if m.counts == nil {
		return append(dst, m.list...)
	}
	for v, c := range m.counts {
		for range c {
			dst = append(dst, v)
		}
	}
	return dst
}
