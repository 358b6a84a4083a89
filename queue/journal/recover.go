package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Recovery is what Open found and repaired. Open also logs it: one Info
// line, and a Warn line for every damaged stretch, gap and removed file.
type Recovery struct {
	Dir      string
	Segments int    // segment files kept
	Records  uint64 // records kept
	First    uint64 // as Journal.First after Open
	Last     uint64 // as Journal.Last after Open
	// Damage lists every stretch of bytes recovery could not read as
	// records, in file order.
	Damage []Damage
	// Gaps lists index ranges missing between two segments (a segment
	// file lost from the middle), not explained by Damage.
	Gaps []Gap
	// Removed lists the files Open deleted: segment files left half
	// created by a crash (*.seg.tmp), segments made obsolete by an
	// interrupted Reset, and a newest segment whose header was damaged
	// and that held no record.
	Removed  []string
	Duration time.Duration // time Open took
}

// Damage is a stretch of a segment file that holds no valid record.
type Damage struct {
	Segment    string // file name
	Start, End int64  // byte range [Start, End)
	Reason     string // what was wrong at Start, e.g. "checksum mismatch"
	// FirstLost..LastLost are the indexes of the records the stretch
	// held, when they are known: a valid record follows it in the same
	// segment, or the next segment starts after it. Both are 0 when no
	// record is known lost, as for a torn tail (records that were being
	// written, never acknowledged unless the disk lost synced data).
	FirstLost, LastLost uint64
	// Truncated says the stretch was the tail of the newest segment and
	// was cut off (the file truncated to Start and fsynced), so the next
	// records are appended in its place.
	Truncated bool
}

// Gap is a range of indexes that no segment covers.
type Gap struct {
	FirstLost, LastLost uint64
	Before              string // the segment after the gap
}

// maxSegmentFile is the largest segment file Open accepts: offsets in
// the index are 32-bit.
const maxSegmentFile = math.MaxUint32

// Open opens the journal in dir, creating the directory and an empty
// journal if needed. It takes the directory's lock file, reads every
// segment to rebuild the in-memory index (the time this takes grows with
// the journal's size), repairs the tail (see Recovery) and starts the
// committer goroutine. Damaged records never make Open fail; an
// unreadable directory, a wrongly named segment file or a failed repair
// does.
func Open(dir string, opts Options) (*Journal, *Recovery, error) {
	start := time.Now()
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	j := &Journal{
		dir:     dir,
		fs:      opts.FS,
		opts:    opts,
		log:     opts.Logger,
		room:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	if err := j.mkdir(); err != nil {
		return nil, nil, fmt.Errorf("journal: open %s: %w", dir, err)
	}
	lock, err := j.fs.Lock(joinDir(dir, lockName))
	if err != nil {
		return nil, nil, fmt.Errorf("journal: open %s: %w", dir, err)
	}
	j.lock = lock
	rec := &Recovery{Dir: dir}
	if err := j.recover(rec); err != nil {
		for _, s := range j.segs {
			s.close()
		}
		lock.Close()
		return nil, nil, fmt.Errorf("journal: open %s: %w", dir, err)
	}
	rec.Segments = len(j.segs)
	rec.First, rec.Last = j.segs[0].first, j.last
	for _, s := range j.segs {
		rec.Records += uint64(s.records)
	}
	rec.Duration = time.Since(start)
	j.lastSync = time.Now()
	j.logRecovery(rec)
	go j.run()
	return j, rec, nil
}

// mkdir creates the journal's directory and any missing parent, and
// fsyncs the parent of each directory it created: a new directory's
// entry is durable only then, and with it everything inside.
func (j *Journal) mkdir() error {
	var created []string
	for d := filepath.Clean(j.dir); ; d = filepath.Dir(d) {
		if _, err := j.fs.ReadDir(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := j.fs.MkdirAll(j.dir, 0o755); err != nil {
		return err
	}
	for _, d := range slices.Backward(created) {
		if err := j.fs.SyncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("sync directory %s: %w", filepath.Dir(d), err)
		}
	}
	return nil
}

// recover rebuilds the segment list and index from the directory.
func (j *Journal) recover(rec *Recovery) error {
	names, err := j.fs.ReadDir(j.dir)
	if err != nil {
		return err
	}
	type found struct {
		name  string
		first uint64
	}
	var segs []found
	for _, name := range names {
		if isSegTmp(name) {
			if err := j.fs.Remove(joinDir(j.dir, name)); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
			rec.Removed = append(rec.Removed, name)
			continue
		}
		first, isSeg, err := parseSegName(name)
		if err != nil {
			return err
		}
		if isSeg {
			segs = append(segs, found{name, first})
		}
	}
	slices.SortFunc(segs, func(a, b found) int { return cmpUint64(a.first, b.first) })

	// Open every segment and read its header; a valid reset mark makes
	// the segments before it obsolete.
	files := make([]File, len(segs))
	sizes := make([]int64, len(segs))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	resetAt := 0
	for i, s := range segs {
		f, err := j.fs.OpenFile(joinDir(j.dir, s.name), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open segment %s: %w", s.name, err)
		}
		files[i] = f
		if sizes[i], err = f.Size(); err != nil {
			return fmt.Errorf("open segment %s: %w", s.name, err)
		}
		if sizes[i] > maxSegmentFile {
			return fmt.Errorf("open segment %s: %d bytes, more than a segment can hold", s.name, sizes[i])
		}
		hb := make([]byte, segHeaderSize)
		if n, _ := f.ReadAt(hb, 0); n == segHeaderSize {
			if h, ok := decodeSegHeader(hb); ok && h.first == s.first && h.reset {
				resetAt = i
			}
		}
	}
	if resetAt > 0 {
		for i := range resetAt {
			files[i].Close()
			files[i] = nil
			if err := j.fs.Remove(joinDir(j.dir, segs[i].name)); err != nil {
				return fmt.Errorf("remove %s: %w", segs[i].name, err)
			}
			rec.Removed = append(rec.Removed, segs[i].name)
		}
		segs, files, sizes = segs[resetAt:], files[resetAt:], sizes[resetAt:]
	}
	if len(rec.Removed) > 0 {
		if err := j.syncDir(); err != nil {
			return err
		}
	}

	// Scan them, oldest first.
	var prevLast uint64 // last index of the previous segment
	for i, sg := range segs {
		upper := uint64(math.MaxUint64)
		if i+1 < len(segs) {
			upper = segs[i+1].first - 1
		}
		res, err := scanSegment(files[i], sizes[i], sg.first, upper, j.opts.MaxRecord)
		if err != nil {
			return fmt.Errorf("read segment %s: %w", sg.name, err)
		}
		if i > 0 && sg.first > prevLast+1 && !trailingLoss(rec.Damage, segs[i-1].name) {
			rec.Gaps = append(rec.Gaps, Gap{FirstLost: prevLast + 1, LastLost: sg.first - 1, Before: sg.name})
		}
		newest := i == len(segs)-1
		// The newest segment is repaired: cut back to its last record,
		// or removed if it holds none and has no valid header.
		drop := newest && !res.hdrOK && res.records == 0
		cut := newest && !drop && res.end < sizes[i]
		s := &segment{name: sg.name, first: sg.first, f: files[i], badHeader: !res.hdrOK,
			offsets: res.offsets, records: res.records, end: res.end}
		for _, d := range res.damage {
			dm := Damage{Segment: sg.name, Start: d.start, End: d.end, Reason: d.reason}
			switch {
			case !d.tail && d.lostTo >= d.lostFrom:
				dm.FirstLost, dm.LastLost = d.lostFrom, d.lostTo
			case !d.tail:
				// Bytes skipped, no record lost (a damaged header).
			case !newest && upper >= d.lostFrom:
				dm.FirstLost, dm.LastLost = d.lostFrom, upper
			case cut:
				dm.Truncated = true
			}
			rec.Damage = append(rec.Damage, dm)
		}
		if cut {
			if err := j.truncate(s, res.end); err != nil {
				return err
			}
		}
		if drop {
			// A newest segment with a damaged header and no record:
			// nothing to keep, and it cannot be appended to.
			files[i].Close()
			files[i] = nil
			if err := j.fs.Remove(joinDir(j.dir, sg.name)); err != nil {
				return fmt.Errorf("remove %s: %w", sg.name, err)
			}
			if err := j.syncDir(); err != nil {
				return err
			}
			rec.Removed = append(rec.Removed, sg.name)
			prevLast = max(prevLast, sg.first-1)
			break
		}
		files[i] = nil // owned by s now
		j.segs = append(j.segs, s)
		prevLast = s.last()
	}

	j.next = prevLast + 1
	if len(j.segs) > 0 {
		j.next = max(j.next, j.segs[len(j.segs)-1].first)
	}
	if j.next == 0 {
		j.next = 1
	}
	j.last = j.next - 1
	j.wnext = j.next
	// Append to the newest segment if it goes on at next; otherwise
	// (damaged header, or the newest file was dropped and the one before
	// ends in lost records) start a new one.
	if n := len(j.segs); n > 0 && !j.segs[n-1].badHeader && j.segs[n-1].last()+1 == j.next {
		j.active = j.segs[n-1]
		j.wend = j.active.end
		return nil
	}
	s, err := j.createSegment(j.next, false)
	if err != nil {
		return err
	}
	j.segs = append(j.segs, s)
	j.active, j.wend = s, segHeaderSize
	return nil
}

// truncate cuts the newest segment back to end and fsyncs it.
func (j *Journal) truncate(s *segment, end int64) error {
	if err := s.f.Truncate(end); err != nil {
		return fmt.Errorf("truncate %s: %w", s.name, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.name, err)
	}
	return nil
}

// trailingLoss says whether the last damage recorded is a tail of name
// with known lost indexes (which then explains a gap before the next
// segment).
func trailingLoss(d []Damage, name string) bool {
	return len(d) > 0 && d[len(d)-1].Segment == name && d[len(d)-1].LastLost != 0
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// logRecovery logs the recovery report.
func (j *Journal) logRecovery(r *Recovery) {
	for _, d := range r.Damage {
		args := []any{"dir", r.Dir, "segment", d.Segment, "start", d.Start, "end", d.End,
			"bytes", d.End - d.Start, "reason", d.Reason}
		if d.LastLost != 0 {
			args = append(args, "first_lost", d.FirstLost, "last_lost", d.LastLost)
		}
		if d.Truncated {
			j.log.Warn("journal: torn tail cut off", args...)
		} else {
			j.log.Warn("journal: damaged records skipped", args...)
		}
	}
	for _, g := range r.Gaps {
		j.log.Warn("journal: records missing between segments", "dir", r.Dir,
			"first_lost", g.FirstLost, "last_lost", g.LastLost, "before", g.Before)
	}
	for _, name := range r.Removed {
		j.log.Warn("journal: removed file", "dir", r.Dir, "file", name)
	}
	j.log.Info("journal: opened", "dir", r.Dir, "segments", r.Segments, "records", r.Records,
		"first", r.First, "last", r.Last, "damaged", len(r.Damage), "gaps", len(r.Gaps),
		"duration", r.Duration)
}
