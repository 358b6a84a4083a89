package journal

import (
	"fmt"
	"sort"
)

// lookup finds the segment holding index and takes a reference to it. It
// returns the record's offset and padded size, or why there is none.
func (j *Journal) lookup(index uint64) (s *segment, off, size int64, err error) {
	j.segMu.RLock()
	defer j.segMu.RUnlock()
	if j.closed {
		return nil, 0, 0, ErrClosed
	}
	switch {
	case index == 0 || index > j.last:
		return nil, 0, 0, ErrNotFound
	case index < j.segs[0].first:
		return nil, 0, 0, ErrRemoved
	}
	k := sort.Search(len(j.segs), func(k int) bool { return j.segs[k].first > index }) - 1
	s = j.segs[k]
	if i := index - s.first; i >= uint64(len(s.offsets)) || s.offsets[i] == 0 {
		return nil, 0, 0, ErrLost
	}
	off, size = recordSpan(s.offsets, index-s.first, s.end, j.opts.MaxRecord)
	s.refs.Add(1)
	return s, off, size, nil
}

// Read returns the payload of the record at index, in buf if it is big
// enough (buf[:0] is grown otherwise). Only acknowledged records (and
// those recovered at Open) are visible. It returns ErrNotFound past Last,
// ErrRemoved before First, ErrLost for a record recovery could not keep
// and ErrCorrupt if the record no longer matches its checksum.
func (j *Journal) Read(index uint64, buf []byte) ([]byte, error) {
	s, off, size, err := j.lookup(index)
	if err != nil {
		return nil, err
	}
	defer s.release()
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := s.f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("journal: read %d from %s: %w", index, s.name, err)
	}
	got, payload, _, why := decodeRecord(buf, j.opts.MaxRecord)
	if why != "" || got != index {
		return nil, fmt.Errorf("%w: index %d in %s at %d", ErrCorrupt, index, s.name, off)
	}
	n := copy(buf, payload)
	return buf[:n], nil
}

// Scan calls fn for every visible record from index from (or First, if
// later) to Last, in index order, skipping lost records; records
// acknowledged while Scan runs may or may not be included. rec is valid
// only during the call. Scan stops at fn's first error and returns it.
// Records are read in large chunks, so a replay reads the files
// sequentially.
func (j *Journal) Scan(from uint64, fn func(index uint64, rec []byte) error) error {
	var r *fileReader
	for {
		j.segMu.RLock()
		if j.closed {
			j.segMu.RUnlock()
			return ErrClosed
		}
		from = max(from, j.segs[0].first, 1)
		if from > j.last {
			j.segMu.RUnlock()
			return nil
		}
		k := sort.Search(len(j.segs), func(k int) bool { return j.segs[k].first > from }) - 1
		s := j.segs[k]
		// The index entries [0, n) never change once visible.
		offs := s.offsets[:len(s.offsets):len(s.offsets)]
		end := s.end
		s.refs.Add(1)
		j.segMu.RUnlock()

		if r == nil || r.f != s.f {
			r = newFileReader(s.f, end)
		}
		r.size = end
		err := j.scanSegment(s, r, offs, end, from, fn)
		s.release()
		if err != nil {
			return err
		}
		next := s.first + uint64(len(offs))
		if next <= from {
			// Nothing more in this segment: go on to the next one.
			next = from + 1
			j.segMu.RLock()
			if k+1 < len(j.segs) && j.segs[k].first == s.first {
				next = max(next, j.segs[k+1].first)
			}
			j.segMu.RUnlock()
		}
		from = next
	}
}

func (j *Journal) scanSegment(s *segment, r *fileReader, offs []uint32, end int64, from uint64, fn func(uint64, []byte) error) error {
	for i := from - s.first; i < uint64(len(offs)); i++ {
		if offs[i] == 0 {
			continue
		}
		index := s.first + i
		off, size := recordSpan(offs, i, end, j.opts.MaxRecord)
		b, err := r.at(off, int(size))
		if err != nil {
			return fmt.Errorf("journal: read %d from %s: %w", index, s.name, err)
		}
		got, payload, _, why := decodeRecord(b, j.opts.MaxRecord)
		if why != "" || got != index {
			return fmt.Errorf("%w: index %d in %s at %d", ErrCorrupt, index, s.name, off)
		}
		if err := fn(index, payload); err != nil {
			return err
		}
	}
	return nil
}

// Check reads every visible record and verifies its checksum and index,
// for tests and audits; it returns the first problem found.
func (j *Journal) Check() error {
	return j.Scan(0, func(uint64, []byte) error { return nil })
}
