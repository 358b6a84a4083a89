package queue

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"switchboard/queue/journal"
)

// PubAck is what a publisher gets once its message is durable.
type PubAck struct {
	Queue     string `json:"queue"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

// Delivery is a message handed to a consumer. Its slices are valid only
// during the Sender call that receives it.
type Delivery struct {
	Queue    string
	Consumer string
	Seq      uint64 // the message's sequence in the queue
	ID       uint64 // this delivery's id: an ack must name it
	Count    uint32 // 1 for the first delivery, 2 for the first redelivery...
	Subject  string // the subject it was published to
	At       time.Time
	Header   []byte // the NATS header block it was published with, or empty
	Data     []byte
}

// Sender carries what a queue sends: deliveries, acknowledgements and
// status replies. The hub implements it; each of a queue's goroutines gets
// its own (Options.NewSender), used by that goroutine alone.
type Sender interface {
	// Deliver sends d to the subject to.
	Deliver(to string, d *Delivery)
	// Reply sends v, JSON-encoded, to the subject to.
	Reply(to string, v any)
	// Status sends a header-only status message ("NATS/1.0 408 Request
	// Timeout") to the subject to.
	Status(to string, code int, text string)
	// Flush writes out what the calls before it queued.
	Flush()
}

// entry is a stored message in memory: 24 bytes. The payload stays in
// the journal until it is delivered.
type entry struct {
	seq  uint64
	at   int64 // Unix nanoseconds
	size uint32
	gone bool // removed: acknowledged (Work), dead, or below the floor
}

// dedupEntry remembers a Msg-Id.
type dedupEntry struct {
	seq     uint64
	at      int64
	durable bool
	waiters []func(PubAck, error) // duplicates published before the original was durable
}

// Queue is one durable queue: its journal, the messages it holds, its
// consumers and their deliveries.
//
// Concurrency: every method is safe for concurrent use. mu guards the
// state; the journal's committer runs the publish callbacks, which take
// mu; the queue's loop goroutine (loop.go) runs timers, dispatch and
// sends. Lock order: Manager.mu, then Queue.mu, then outMu. Nothing that
// can block on the journal runs under mu.
type Queue struct {
	m      *Manager
	name   string
	dir    string
	j      *journal.Journal
	log    *slog.Logger
	recov  *journal.Recovery
	stop   chan struct{}
	done   chan struct{}
	kickCh chan struct{}

	mu            sync.Mutex
	cfg           Config
	entries       []entry // live messages by sequence; entries[head:] are in use
	head          int
	count         int64 // messages not gone
	bytes         int64 // their sizes
	dedup         map[string]*dedupEntry
	dedupFIFO     []string // Msg-Ids in publish order, for expiry
	delayed       map[uint64]int64
	groups        map[string]*group
	consumers     map[string]*consumer
	pulls         []*pull
	timers        deadlineHeap
	nextID        uint64 // next delivery id
	failed        error
	badRecs       int
	opened        time.Duration // how long opening (journal recovery and replay) took
	admitted      int64         // publishes admitted, not yet stored or failed
	applied       uint64        // the highest message sequence added to entries (stored or replayed)
	admittedBytes int64
	floorSeq      uint64     // the last floor written
	removedTo     uint64     // RemoveBefore last asked for this
	deads         []*deadJob // for the loop to move to the dead-letter queue
	deadDone      []*deadJob // stored in the dead-letter queue: to record as finished

	outMu sync.Mutex
	out   []outMsg // replies queued by publish callbacks, sent by the loop
}

// outMsg is a reply the loop sends.
type outMsg struct {
	to   string
	v    any
	code int // status code for a Status reply; 0: Reply(v)
	text string
}

// openQueue opens (or creates) the queue in dir with configuration cfg
// (validated) and replays its journal.
func (m *Manager) openQueue(dir string, cfg Config) (*Queue, error) {
	start := time.Now()
	mode, _ := cfg.syncMode()
	log := m.log.With("queue", cfg.Name)
	j, rec, err := journal.Open(dir+"/log", journal.Options{
		FS: m.opts.FS, SegmentSize: m.opts.SegmentSize, Sync: mode, Logger: log,
		// The largest record any configuration can write: max_msg_size may
		// change later, and recovery must never take an old, larger record
		// for damage.
		MaxRecord: maxRecord,
	})
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", cfg.Name, err)
	}
	q := &Queue{
		m: m, name: cfg.Name, dir: dir, j: j, log: log, recov: rec, cfg: cfg,
		stop: make(chan struct{}), done: make(chan struct{}), kickCh: make(chan struct{}, 1),
		dedup: map[string]*dedupEntry{}, delayed: map[uint64]int64{},
		groups: map[string]*group{}, consumers: map[string]*consumer{},
		nextID: randomID(),
	}
	q.setConsumersLocked(cfg.Consumers, false)
	if err := q.replay(); err != nil {
		j.Close()
		return nil, fmt.Errorf("open queue %s: %w", cfg.Name, err)
	}
	q.opened = time.Since(start)
	if q.count > 0 || q.badRecs > 0 {
		log.Info("queue: replayed", "messages", q.count, "bytes", q.bytes, "bad_records", q.badRecs, "took", q.opened)
	}
	go q.loop()
	return q, nil
}

// replay rebuilds the state from the journal.
func (q *Queue) replay() error {
	now := time.Now().UnixNano()
	for _, g := range q.groups {
		g.next, g.floor = q.j.First(), q.j.First()
	}
	q.entries = make([]entry, 0, q.j.Stats().Records) // at most one per record
	err := q.j.Scan(q.j.First(), func(index uint64, b []byte) error {
		r, err := decodeRecord(b)
		if err != nil {
			q.badRecs++
			q.log.Warn("queue: skipping a record that does not decode", "index", index, "err", err)
			return nil
		}
		switch r.Type {
		case recMsg:
			q.addEntry(index, &r.Msg, now, true)
		case recAck:
			q.finish(q.groupFor(r.Group), r.Seq, r.Kind, false)
		case recDelivered:
			g := q.groupFor(r.Group)
			if q.live(r.Seq) && !g.finished(r.Seq) {
				g.counts[r.Seq] = max(g.counts[r.Seq], r.Count)
			}
		case recFloor:
			q.applyFloor(r.Seq)
			q.floorSeq = max(q.floorSeq, r.Seq)
		case recGroup:
			// The consumer was created (again) here: acks before belong
			// to an earlier consumer of that name.
			if g := q.groups[r.Group]; g != nil && q.cfg.Retention == Limits {
				g.reset(q.j.First())
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	first := q.firstLive()
	for _, g := range q.groups {
		g.next = first
		if g.floor < first {
			g.dropBelow(first)
		}
	}
	return nil
}

// addEntry records a durable message at seq; called with mu held (or
// during replay, which also rebuilds the dedup table). It reads only the
// lengths of m's slices: after Publish returns they belong to the caller.
func (q *Queue) addEntry(seq uint64, m *msgRecord, now int64, replay bool) {
	size := len(m.Header) + len(m.Data)
	q.entries = append(q.entries, entry{seq: seq, at: m.At, size: uint32(size)})
	q.applied = max(q.applied, seq)
	q.count++
	q.bytes += int64(size)
	if m.NotBefore > now {
		q.delayed[seq] = m.NotBefore
	}
	if replay && m.MsgID != "" && q.cfg.DedupWindow > 0 && now-m.At < int64(q.cfg.DedupWindow) {
		if _, ok := q.dedup[m.MsgID]; !ok {
			q.dedupFIFO = append(q.dedupFIFO, m.MsgID)
		}
		q.dedup[m.MsgID] = &dedupEntry{seq: seq, at: m.At, durable: true}
	}
}

// find returns the index in q.entries of the message seq, or -1.
func (q *Queue) find(seq uint64) int {
	e := q.entries[q.head:]
	i := sort.Search(len(e), func(i int) bool { return e[i].seq >= seq })
	if i < len(e) && e[i].seq == seq {
		return q.head + i
	}
	return -1
}

// live reports whether seq is a message the queue still holds.
func (q *Queue) live(seq uint64) bool {
	i := q.find(seq)
	return i >= 0 && !q.entries[i].gone
}

// firstLive returns the sequence of the oldest message held, or, when
// there is none, the one after the last message stored. Not the journal's
// Last: the committer moves that before the callbacks that add a batch's
// messages run, and a trim or a floor up to it would take messages that
// were just acknowledged.
func (q *Queue) firstLive() uint64 {
	q.trimHead()
	if q.head < len(q.entries) {
		return q.entries[q.head].seq
	}
	return q.applied + 1
}

// remove marks the entry at index i gone.
func (q *Queue) remove(i int) {
	e := &q.entries[i]
	if e.gone {
		return
	}
	e.gone = true
	q.count--
	q.bytes -= int64(e.size)
	delete(q.delayed, e.seq)
}

// trimHead drops gone entries from the front, and compacts the slice when
// the dropped part is large.
func (q *Queue) trimHead() {
	for q.head < len(q.entries) && q.entries[q.head].gone {
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.entries) {
		n := copy(q.entries, q.entries[q.head:])
		q.entries = q.entries[:n]
		q.head = 0
	}
}

// applyFloor removes every message below seq.
func (q *Queue) applyFloor(seq uint64) {
	for i := q.head; i < len(q.entries) && q.entries[i].seq < seq; i++ {
		q.remove(i)
	}
	q.trimHead()
	for _, g := range q.groups {
		g.dropBelow(seq)
	}
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// Config returns the queue's configuration.
func (q *Queue) Config() Config {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cfg
}

// Publish stores a message published on subj. done is called once, on the
// journal's committer goroutine (or at once for an error found before the
// message is appended), with the sequence the message got and a nil error
// only after it is durable as the queue's Sync mode defines; it must be
// quick. A Msg-Id seen within the dedup window is not stored again: done
// gets the first message's sequence with Duplicate set, after that message
// is durable. notBefore, if not zero, delays delivery until then.
func (q *Queue) Publish(ctx context.Context, subj string, hdr, data []byte, msgID string, notBefore time.Time, done func(PubAck, error)) {
	m := msgRecord{At: time.Now().UnixNano(), Subject: subj, MsgID: msgID, Header: hdr, Data: data}
	if !notBefore.IsZero() {
		m.NotBefore = notBefore.UnixNano()
	}
	if err := q.admit(&m, done); err != nil {
		if err != errDuplicate {
			done(PubAck{Queue: q.name}, err)
		}
		return
	}
	buf := getBuf(msgSize(&m))
	rec := appendMsg((*buf)[:0], &m)
	_, err := q.j.Append(ctx, rec, func(seq uint64, err error) { q.stored(seq, &m, err, done) })
	putBuf(buf, rec)
	if err != nil {
		q.unadmit(&m)
		done(PubAck{Queue: q.name}, q.storageErr(err))
	}
}

var errDuplicate = errors.New("duplicate")

// admit checks a message before it is appended and notes its Msg-Id; it
// returns errDuplicate (having arranged done) for a duplicate.
func (q *Queue) admit(m *msgRecord, done func(PubAck, error)) error {
	if len(m.Subject) > maxSubjectLen || len(m.MsgID) > maxMsgIDLen {
		return fmt.Errorf("%w: subject or Msg-Id longer than %d bytes", ErrTooLarge, maxSubjectLen)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failed != nil {
		return q.failed
	}
	size := int64(len(m.Header) + len(m.Data))
	if size > int64(q.cfg.MaxMsgSize) {
		return fmt.Errorf("%w: %d bytes, the queue takes at most %d", ErrTooLarge, size, q.cfg.MaxMsgSize)
	}
	dedup := m.MsgID != "" && q.cfg.DedupWindow > 0
	if dedup {
		// Before the limits: a retry of a stored message gets its
		// duplicate ack even when the queue is full now.
		q.expireDedup(m.At)
		if d, ok := q.dedup[m.MsgID]; ok {
			if d.durable {
				ack := PubAck{Queue: q.name, Seq: d.seq, Duplicate: true}
				q.mu.Unlock()
				done(ack, nil)
				q.mu.Lock()
			} else {
				d.waiters = append(d.waiters, done)
			}
			return errDuplicate
		}
	}
	if q.cfg.Retention == Work && (q.cfg.MaxMsgs > 0 && q.count+q.admitted >= q.cfg.MaxMsgs || q.cfg.MaxBytes > 0 && q.bytes+q.admittedBytes+size > q.cfg.MaxBytes) {
		return fmt.Errorf("%w: %d messages, %d bytes held or being stored (max_msgs %d, max_bytes %d)", ErrFull, q.count+q.admitted, q.bytes+q.admittedBytes, q.cfg.MaxMsgs, q.cfg.MaxBytes)
	}
	q.admitted++
	q.admittedBytes += size
	if dedup {
		q.dedup[m.MsgID] = &dedupEntry{at: m.At}
		q.dedupFIFO = append(q.dedupFIFO, m.MsgID)
	}
	return nil
}

// unadmit undoes admit for a message that was not appended.
func (q *Queue) unadmit(m *msgRecord) {
	q.mu.Lock()
	q.admitted--
	q.admittedBytes -= int64(len(m.Header) + len(m.Data))
	if m.MsgID == "" {
		q.mu.Unlock()
		return
	}
	d := q.dedup[m.MsgID]
	if d != nil && !d.durable {
		delete(q.dedup, m.MsgID)
	}
	q.mu.Unlock()
	if d != nil {
		for _, w := range d.waiters {
			w(PubAck{Queue: q.name}, ErrFailed)
		}
	}
}

// expireDedup forgets Msg-Ids older than the window.
func (q *Queue) expireDedup(now int64) {
	w := int64(q.cfg.DedupWindow)
	for len(q.dedupFIFO) > 0 {
		id := q.dedupFIFO[0]
		d, ok := q.dedup[id]
		if ok && (now-d.at < w || !d.durable) {
			break // still in the window, or still being stored: expire it later
		}
		if ok {
			delete(q.dedup, id)
		}
		q.dedupFIFO = q.dedupFIFO[1:]
	}
}

// stored is the journal's callback for a message record.
func (q *Queue) stored(seq uint64, m *msgRecord, err error, done func(PubAck, error)) {
	ack := PubAck{Queue: q.name, Seq: seq}
	var waiters []func(PubAck, error)
	q.mu.Lock()
	q.admitted--
	q.admittedBytes -= int64(len(m.Header) + len(m.Data))
	var d *dedupEntry
	if m.MsgID != "" {
		d = q.dedup[m.MsgID]
		if d != nil && !d.durable {
			waiters = d.waiters
			d.waiters = nil
		}
	}
	if err != nil {
		err = q.storageErrLocked(err)
		if d != nil && !d.durable {
			delete(q.dedup, m.MsgID)
		}
		q.mu.Unlock()
		done(ack, err)
		for _, w := range waiters {
			w(ack, err)
		}
		return
	}
	if d != nil {
		d.seq, d.durable = seq, true
	}
	q.addEntry(seq, m, time.Now().UnixNano(), false)
	if q.cfg.Retention == Limits {
		q.enforceLimitsLocked()
	}
	q.mu.Unlock()
	q.kick()
	done(ack, nil)
	for _, w := range waiters {
		w(PubAck{Queue: q.name, Seq: seq, Duplicate: true}, nil)
	}
}

// storageErr turns a journal error into the queue's, and a failed journal
// into a failed queue.
func (q *Queue) storageErr(err error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.storageErrLocked(err)
}

// storageErrLocked is storageErr with mu held.
func (q *Queue) storageErrLocked(err error) error {
	if errors.Is(err, journal.ErrFailed) {
		if q.failed == nil {
			q.failed = fmt.Errorf("%w: %w", ErrFailed, err)
			q.log.Error("queue: storage failed; the queue is read-only", "err", err)
		}
		return q.failed
	}
	if errors.Is(err, journal.ErrClosed) {
		return ErrClosed
	}
	return err
}

// enforceLimitsLocked removes the oldest messages of a Limits queue past
// MaxMsgs or MaxBytes, with one floor record.
func (q *Queue) enforceLimitsLocked() {
	c := q.cfg
	if c.MaxMsgs == 0 && c.MaxBytes == 0 {
		return
	}
	var floor uint64
	for q.head < len(q.entries) && (c.MaxMsgs > 0 && q.count > c.MaxMsgs || c.MaxBytes > 0 && q.bytes > c.MaxBytes) {
		floor = q.entries[q.head].seq + 1
		q.remove(q.head)
		q.trimHead()
	}
	if rec := q.floorLocked(floor); rec != nil {
		q.appendRecord(rec, true)
	}
}

// floorLocked applies "everything below seq is removed" and returns the
// record that says so, or nil if an earlier floor covers it (or seq is 0).
// The record is best effort: if it is lost in a crash, the messages come
// back after the restart until the next publish enforces the limits again
// (replay does not enforce them).
func (q *Queue) floorLocked(seq uint64) []byte {
	if seq == 0 {
		return nil
	}
	q.applyFloor(seq)
	if seq <= q.floorSeq {
		return nil
	}
	q.floorSeq = seq
	return appendFloor(nil, seq)
}

// appendRecord appends a bookkeeping record (a floor, a group start, a
// delivery count, the end of an unreadable message) without waiting for it
// to be durable: if it is lost in a crash, a message is delivered again
// (with a lower count) or comes back until the limits remove it again.
// With locked the caller holds mu, so it must not wait for room in the
// journal: past the journal's pending limit the record is skipped.
func (q *Queue) appendRecord(rec []byte, locked bool) {
	ctx := context.Background()
	if locked {
		c, cancel := context.WithCancel(ctx)
		cancel() // never wait for room
		ctx = c
	}
	_, err := q.j.Append(ctx, rec, func(_ uint64, err error) {
		if err != nil {
			q.storageErr(err)
		}
	})
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case locked:
		q.storageErrLocked(err)
	default:
		q.storageErr(err)
	}
}

// Purge removes every message. Deliveries in flight are forgotten: their
// acks fail.
func (q *Queue) Purge() error {
	q.mu.Lock()
	if q.failed != nil {
		defer q.mu.Unlock()
		return q.failed
	}
	q.mu.Unlock()
	if err := q.j.Reset(); err != nil {
		return q.storageErr(err)
	}
	// Everything from the journal's first index on was appended after
	// the reset: publishes acknowledged while Purge ran stay.
	from := q.j.First()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.applyFloor(from)
	return nil
}

// kick wakes the loop.
func (q *Queue) kick() {
	select {
	case q.kickCh <- struct{}{}:
	default:
	}
}

// replyLater queues a reply for the loop to send.
func (q *Queue) replyLater(m outMsg) {
	q.outMu.Lock()
	q.out = append(q.out, m)
	first := len(q.out) == 1
	q.outMu.Unlock()
	if first {
		q.kick()
	}
}

// Reply sends v (JSON) to the subject to from the queue's loop goroutine,
// batched with its other sends. The hub uses it to answer publishes and
// acks from journal callbacks, which must not write to sockets.
func (q *Queue) Reply(to string, v any) { q.replyLater(outMsg{to: to, v: v}) }

// close stops the loop and closes the journal. Waiting fetches end with
// status 409 and why.
func (q *Queue) close(why string) error {
	q.mu.Lock()
	pulls := q.pulls
	q.pulls = nil
	q.mu.Unlock()
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	<-q.done
	if len(pulls) > 0 {
		snd := q.m.opts.NewSender()
		for _, p := range pulls {
			snd.Status(p.to, 409, why)
		}
		snd.Flush()
	}
	return q.j.Close()
}

// maxRecord is the largest journal record a queue writes: a message of
// MaxMaxMsgSize with the longest subject and Msg-Id.
const maxRecord = MaxMaxMsgSize + maxSubjectLen + maxMsgIDLen + msgFixed

// randomID returns a random start for delivery ids, so that the ids of
// one run say nothing about another's.
func randomID() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return uint64(time.Now().UnixNano())
	}
	return binary.LittleEndian.Uint64(b[:]) >> 1
}

// bufPool holds record buffers.
var bufPool sync.Pool

func getBuf(n int) *[]byte {
	if p, ok := bufPool.Get().(*[]byte); ok && cap(*p) >= n {
		return p
	}
	b := make([]byte, 0, max(n, 512))
	return &b
}

func putBuf(p *[]byte, used []byte) {
	if cap(used) > 1<<20 {
		return
	}
	*p = used[:0]
	bufPool.Put(p)
}
