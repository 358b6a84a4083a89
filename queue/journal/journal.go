package journal

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Journal is an append-only log of records in one directory. Its methods
// are safe for concurrent use; see the package documentation for the
// concurrency contract.
type Journal struct {
	dir  string
	fs   FS
	opts Options
	log  *slog.Logger
	lock io.Closer

	// mu guards the append side. Lock order: mu before segMu; neither is
	// held while calling a done callback or doing I/O.
	mu         sync.Mutex
	fill       batch      // records appended, not yet taken by the committer
	ops        []*adminOp // RemoveBefore and Reset calls for the committer
	next       uint64     // index the next Append gets
	pending    int64      // encoded bytes appended and not yet completed
	closing    bool
	failed     error         // non-nil once the journal failed; wraps ErrFailed
	room       chan struct{} // closed when pending shrinks, if roomWanted
	roomWanted bool
	wake       chan struct{} // capacity 1: work for the committer
	stopped    chan struct{} // closed when the committer returns

	// segMu guards segs, last, closed and each segment's index fields.
	segMu  sync.RWMutex
	segs   []*segment // by first index; the last one is active
	last   uint64     // last visible index
	closed bool

	// Owned by the committer goroutine (and Open before it starts).
	active   *segment
	wend     int64     // bytes written to the active segment
	wnext    uint64    // index of the next record the committer writes
	dirty    bool      // the active segment has unsynced writes
	lastSync time.Time // of the active segment, for SyncInterval
	place    []placed  // scratch: where each record of a batch went
	spare    batch

	closeOnce sync.Once
	closeErr  error

	stats struct {
		appends, failedAppends, batches, syncs, dirSyncs atomic.Uint64
		maxBatch                                         atomic.Int64
	}
}

// batch is a run of encoded records for one write.
type batch struct {
	buf  []byte
	recs []pendingRec
}

type pendingRec struct {
	index uint64
	size  int // padded size in buf
	done  func(uint64, error)
}

type placed struct {
	seg *segment
	off int64
}

// Stats are counters for observability and benchmarks.
type Stats struct {
	First, Last uint64 // kept range, as First and Last return
	Records     uint64 // records kept (lost ones not counted)
	Segments    int    // segment files
	Bytes       int64  // bytes of the kept segment files
	Appends     uint64 // appends acknowledged since Open
	Failed      uint64 // appends completed with an error since Open
	Batches     uint64 // write batches (group commits) since Open
	Syncs       uint64 // fsyncs of segment files since Open
	DirSyncs    uint64 // fsyncs of the directory since Open
	MaxBatch    int    // most records written by one batch
	Pending     int64  // bytes appended and not yet completed
}

// Append adds a record to the journal and returns its index at once;
// indexes are dense and given in call order. The record is copied before
// Append returns. done, if not nil, is called exactly once, later, from
// the journal's committer goroutine, in index order, with the same index
// and nil once the record is acknowledged (with SyncAlways: written and
// fsynced), or with an error wrapping ErrFailed if the journal failed
// before that: the record may or may not be on disk then.
//
// Append blocks only while more than Options.MaxPending bytes are
// pending, until there is room or ctx ends. It returns an error, and
// never calls done, for a record longer than MaxRecord (ErrTooLarge),
// after Close (ErrClosed), once the journal failed (an error wrapping
// ErrFailed and its cause) and when ctx ends while it waits.
//
// done runs on the committer: it must be quick and must not call Close,
// Reset, RemoveBefore or AppendSync, nor an Append that could block
// (the committer is what makes room); Read, Scan and the other
// accessors are fine.
func (j *Journal) Append(ctx context.Context, rec []byte, done func(index uint64, err error)) (uint64, error) {
	if len(rec) > j.opts.MaxRecord {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(rec), j.opts.MaxRecord)
	}
	pcrc := payloadCRC(rec)
	size := int64(paddedSize(len(rec)))
	j.mu.Lock()
	for {
		if j.closing {
			j.mu.Unlock()
			return 0, ErrClosed
		}
		if j.failed != nil {
			err := j.failed
			j.mu.Unlock()
			return 0, err
		}
		if j.pending == 0 || j.pending+size <= int64(j.opts.MaxPending) {
			break
		}
		j.roomWanted = true
		room := j.room
		j.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		j.mu.Lock()
	}
	index := j.next
	j.next++
	wasEmpty := len(j.fill.recs) == 0
	j.fill.buf = appendRecord(j.fill.buf, index, rec, pcrc)
	j.fill.recs = append(j.fill.recs, pendingRec{index: index, size: int(size), done: done})
	j.pending += size
	j.mu.Unlock()
	if wasEmpty {
		j.kick()
	}
	return index, nil
}

// kick wakes the committer.
func (j *Journal) kick() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// AppendSync appends a record and waits until it is acknowledged. If ctx
// ends first it returns ctx.Err(); the record may still be written.
func (j *Journal) AppendSync(ctx context.Context, rec []byte) (uint64, error) {
	type result struct {
		index uint64
		err   error
	}
	ch := make(chan result, 1)
	if _, err := j.Append(ctx, rec, func(i uint64, err error) { ch <- result{i, err} }); err != nil {
		return 0, err
	}
	select {
	case r := <-ch:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Err returns nil, or the error (wrapping ErrFailed and its cause) that
// stopped the journal's write path. A failed journal still serves Read,
// Scan, First, Last and Stats; Open the directory again to write.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

// fail puts the journal in the failed state (once) and returns the
// failure.
func (j *Journal) fail(cause error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed == nil {
		j.failed = fmt.Errorf("%w: %w", ErrFailed, cause)
		j.log.Error("journal failed; appends fail until it is reopened", "dir", j.dir, "err", cause)
		if j.roomWanted {
			close(j.room)
			j.room, j.roomWanted = make(chan struct{}), false
		}
	}
	return j.failed
}

// First returns the smallest index the journal may still hold: the
// first index of its oldest segment. With nothing kept, First is
// Last()+1.
func (j *Journal) First() uint64 {
	j.segMu.RLock()
	defer j.segMu.RUnlock()
	return j.segs[0].first
}

// Last returns the index of the newest record visible to Read: the last
// acknowledged one, or at Open the last one recovered. The next append
// gets Last()+1 or more.
func (j *Journal) Last() uint64 {
	j.segMu.RLock()
	defer j.segMu.RUnlock()
	return j.last
}

// Stats returns the journal's counters.
func (j *Journal) Stats() Stats {
	st := Stats{
		Appends:  j.stats.appends.Load(),
		Failed:   j.stats.failedAppends.Load(),
		Batches:  j.stats.batches.Load(),
		Syncs:    j.stats.syncs.Load(),
		DirSyncs: j.stats.dirSyncs.Load(),
		MaxBatch: int(j.stats.maxBatch.Load()),
	}
	j.mu.Lock()
	st.Pending = j.pending
	j.mu.Unlock()
	j.segMu.RLock()
	st.First, st.Last, st.Segments = j.segs[0].first, j.last, len(j.segs)
	for _, s := range j.segs {
		st.Records += uint64(s.records)
		st.Bytes += s.end
	}
	j.segMu.RUnlock()
	return st
}

// Close waits for every pending append to complete, fsyncs what is not
// yet synced, stops the committer and closes the files. It returns the
// journal's failure, if any. Calls after the first return the same.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		j.mu.Lock()
		j.closing = true
		if j.roomWanted {
			close(j.room)
			j.room, j.roomWanted = make(chan struct{}), false
		}
		j.mu.Unlock()
		j.kick()
		<-j.stopped
		j.segMu.Lock()
		j.closed = true
		segs := j.segs
		j.segMu.Unlock()
		for _, s := range segs {
			s.drop()
		}
		if err := j.lock.Close(); err != nil {
			j.log.Warn("journal: release lock", "dir", j.dir, "err", err)
		}
		j.closeErr = j.Err()
	})
	return j.closeErr
}
