package journal

import (
	"fmt"
	"os"
	"time"
)

// adminOp is a RemoveBefore or Reset call, carried out by the committer
// between batches so that every file change happens on one goroutine.
type adminOp struct {
	reset  bool
	before uint64 // RemoveBefore's index
	result chan error
}

// run is the committer goroutine: it takes everything appended since the
// last batch, writes it with one write per segment touched, fsyncs once
// (SyncAlways), publishes it to readers and calls the done callbacks;
// then it carries out queued RemoveBefore and Reset calls.
func (j *Journal) run() {
	defer close(j.stopped)
	var timer *time.Timer
	var timerC <-chan time.Time
	if j.opts.Sync == SyncInterval {
		timer = time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		timerC = timer.C
	}
	for {
		j.mu.Lock()
		for len(j.fill.recs) == 0 && len(j.ops) == 0 && !j.closing {
			j.mu.Unlock()
			select {
			case <-j.wake:
			case <-timerC:
				j.intervalSync(true)
			}
			j.mu.Lock()
		}
		b := j.fill
		j.fill = j.spare
		ops := j.ops
		j.ops = nil
		closing, failed := j.closing, j.failed
		j.mu.Unlock()

		if n := len(b.recs); n > 0 {
			if failed == nil {
				if err := j.commit(&b); err != nil {
					failed = j.fail(err)
				}
			}
			if failed != nil {
				j.release(&b)
				for _, r := range b.recs {
					j.stats.failedAppends.Add(1)
					if r.done != nil {
						r.done(r.index, failed)
					}
				}
			}
		}
		for _, op := range ops {
			op.result <- j.runOp(op)
		}
		clear(b.recs) // drop the callbacks
		j.spare = batch{buf: b.buf[:0], recs: b.recs[:0]}
		if timer != nil && j.dirty {
			timer.Reset(max(0, j.opts.SyncInterval-time.Since(j.lastSync)))
		}
		if closing {
			// Append and the admin calls refuse work once closing is
			// set, so nothing is left behind.
			if j.dirty && j.Err() == nil {
				if err := j.syncActive(); err != nil {
					j.fail(err)
				}
			}
			return
		}
	}
}

// commit writes a batch, rolling over to new segments as they fill up,
// fsyncs it as the sync mode says, makes it visible and calls the done
// callbacks with nil. An error leaves the batch unacknowledged.
func (j *Journal) commit(b *batch) error {
	j.place = j.place[:0]
	i, boff := 0, 0
	for i < len(b.recs) {
		act := j.active
		n := 0
		for i < len(b.recs) {
			sz := b.recs[i].size
			if j.wend+int64(n+sz) > j.opts.SegmentSize && (n > 0 || j.wend > segHeaderSize) {
				break
			}
			j.place = append(j.place, placed{act, j.wend + int64(n)})
			n += sz
			i++
		}
		if n > 0 {
			if _, err := act.f.WriteAt(b.buf[boff:boff+n], j.wend); err != nil {
				return fmt.Errorf("write %s: %w", act.name, err)
			}
			j.wend += int64(n)
			boff += n
			j.dirty = true
			j.wnext = b.recs[i-1].index + 1
		}
		if i < len(b.recs) {
			if err := j.roll(b.recs[i].index); err != nil {
				return err
			}
		}
	}
	j.stats.batches.Add(1)
	if int64(len(b.recs)) > j.stats.maxBatch.Load() {
		j.stats.maxBatch.Store(int64(len(b.recs)))
	}
	switch j.opts.Sync {
	case SyncAlways:
		if err := j.syncActive(); err != nil {
			return err
		}
	case SyncInterval:
		if err := j.intervalSync(false); err != nil {
			return err
		}
	}
	j.segMu.Lock()
	for k, p := range j.place {
		p.seg.offsets = append(p.seg.offsets, uint32(p.off))
		p.seg.records++
		p.seg.end = p.off + int64(b.recs[k].size)
	}
	j.last = b.recs[len(b.recs)-1].index
	j.segMu.Unlock()
	j.stats.appends.Add(uint64(len(b.recs)))
	j.release(b)
	for _, r := range b.recs {
		if r.done != nil {
			r.done(r.index, nil)
		}
	}
	return nil
}

// release gives back the room a batch took in MaxPending, before its
// callbacks run, and wakes Appends waiting for room.
func (j *Journal) release(b *batch) {
	var bytes int64
	for _, r := range b.recs {
		bytes += int64(r.size)
	}
	j.mu.Lock()
	j.pending -= bytes
	if j.roomWanted {
		close(j.room)
		j.room, j.roomWanted = make(chan struct{}), false
	}
	j.mu.Unlock()
}

// syncActive fsyncs the active segment if it has unsynced writes.
func (j *Journal) syncActive() error {
	if !j.dirty {
		return nil
	}
	if err := j.active.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", j.active.name, err)
	}
	j.stats.syncs.Add(1)
	j.dirty = false
	j.lastSync = time.Now()
	return nil
}

// intervalSync fsyncs the active segment if SyncInterval has passed since
// the last fsync. From the timer (idle), it also puts a failure in force.
func (j *Journal) intervalSync(idle bool) error {
	if !j.dirty || time.Since(j.lastSync) < j.opts.SyncInterval {
		return nil
	}
	if idle && j.Err() != nil {
		return nil
	}
	err := j.syncActive()
	if err != nil && idle {
		j.fail(err)
	}
	return err
}

// roll finishes the active segment (fsynced in every mode, so that only
// the newest segment can ever have a torn tail) and starts a new one
// whose first record will be index.
func (j *Journal) roll(index uint64) error {
	if err := j.syncActive(); err != nil {
		return err
	}
	s, err := j.createSegment(index, false)
	if err != nil {
		return err
	}
	j.segMu.Lock()
	j.segs = append(j.segs, s)
	j.segMu.Unlock()
	j.active, j.wend, j.dirty = s, segHeaderSize, false
	return nil
}

// createSegment makes a new segment file durable: header written to a
// temporary file, fsynced, renamed into place, directory fsynced. A
// crash leaves either no segment or a whole header.
func (j *Journal) createSegment(first uint64, reset bool) (*segment, error) {
	name := segName(first)
	path := joinDir(j.dir, name)
	f, err := j.fs.OpenFile(path+tmpExt, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", name, err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		return nil, fmt.Errorf("create segment %s: %w", name, err)
	}
	if _, err := f.WriteAt(encodeSegHeader(segHeader{first: first, reset: reset}), 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := j.fs.Rename(path+tmpExt, path); err != nil {
		return fail(err)
	}
	if err := j.syncDir(); err != nil {
		return fail(err)
	}
	// Go on through the final name, so that errors name the segment.
	f.Close()
	if f, err = j.fs.OpenFile(path, os.O_RDWR, 0); err != nil {
		return nil, fmt.Errorf("open segment %s: %w", name, err)
	}
	return &segment{name: name, first: first, f: f, end: segHeaderSize}, nil
}

func (j *Journal) syncDir() error {
	if err := j.fs.SyncDir(j.dir); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	j.stats.dirSyncs.Add(1)
	return nil
}

// RemoveBefore deletes the oldest segment files whose records all have
// indexes below index, oldest first, then fsyncs the directory. It works
// on whole segments and never removes the active (newest) one, so
// First() may stay below index. Records it removes never come back,
// even after a crash, once it returned nil. An I/O error puts the
// journal in the failed state.
func (j *Journal) RemoveBefore(index uint64) error {
	return j.admin(&adminOp{before: index})
}

// Reset drops every record: it starts a new, empty segment marked as a
// reset and removes all the others. Indexes are never reused: the next
// append gets the index it would have had. After a crash in the middle,
// Open finishes the job (the mark says older segments are obsolete). An
// I/O error puts the journal in the failed state.
func (j *Journal) Reset() error {
	return j.admin(&adminOp{reset: true})
}

func (j *Journal) admin(op *adminOp) error {
	op.result = make(chan error, 1)
	j.mu.Lock()
	if j.closing {
		j.mu.Unlock()
		return ErrClosed
	}
	if j.failed != nil {
		err := j.failed
		j.mu.Unlock()
		return err
	}
	j.ops = append(j.ops, op)
	j.mu.Unlock()
	j.kick()
	return <-op.result
}

// runOp carries out an admin call on the committer.
func (j *Journal) runOp(op *adminOp) error {
	if err := j.Err(); err != nil {
		return err
	}
	var err error
	if op.reset {
		err = j.reset()
	} else {
		err = j.removeBefore(op.before)
	}
	if err != nil {
		return j.fail(err)
	}
	return nil
}

func (j *Journal) removeBefore(index uint64) error {
	j.segMu.Lock()
	n := 0
	for n+1 < len(j.segs) && j.segs[n+1].first <= index {
		n++
	}
	gone := append([]*segment(nil), j.segs[:n]...)
	j.segs = append(j.segs[:0:0], j.segs[n:]...)
	j.segMu.Unlock()
	if n == 0 {
		return nil
	}
	var err error
	for _, s := range gone {
		s.drop()
		if err == nil {
			if rerr := j.fs.Remove(joinDir(j.dir, s.name)); rerr != nil {
				err = fmt.Errorf("remove %s: %w", s.name, rerr)
			}
		}
	}
	if err != nil {
		return err
	}
	return j.syncDir()
}

func (j *Journal) reset() error {
	s, err := j.createSegment(j.wnext, true)
	if err != nil {
		return err
	}
	j.segMu.Lock()
	gone := j.segs
	j.segs = []*segment{s}
	j.last = j.wnext - 1
	j.segMu.Unlock()
	j.active, j.wend, j.dirty = s, segHeaderSize, false
	for _, g := range gone {
		g.drop()
		if g.name == s.name {
			continue // the rename replaced it
		}
		if rerr := j.fs.Remove(joinDir(j.dir, g.name)); rerr != nil && err == nil {
			err = fmt.Errorf("remove %s: %w", g.name, rerr)
		}
	}
	if err != nil {
		return err
	}
	return j.syncDir()
}
