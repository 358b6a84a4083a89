package journal

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// segment is one segment file and its in-memory index: the offset of
// every record, found by scanning the file at Open and extended as
// records are acknowledged.
type segment struct {
	name  string // file name, without the directory
	first uint64 // index of the first record, from the file name
	f     File
	// badHeader marks a segment whose header recovery found damaged: it
	// is never appended to.
	badHeader bool

	// Guarded by Journal.segMu.
	offsets []uint32 // offsets[i]: file offset of record first+i; 0 if lost
	end     int64    // end of the last visible record
	records int      // nonzero entries of offsets

	refs      atomic.Int32 // readers using f
	removed   atomic.Bool  // dropped from the journal; close f when refs is 0
	closeOnce sync.Once
	closeErr  error
}

// last is the index of the segment's last visible record, first-1 if it
// has none. Called with segMu held.
func (s *segment) last() uint64 { return s.first + uint64(len(s.offsets)) - 1 }

// recordSpan returns the offset of record i of offs (not lost) and the
// bytes to read for it: up to the next kept record or end, at most the
// padded size of the largest record (damage may follow it).
func recordSpan(offs []uint32, i uint64, end int64, maxRecord int) (off int64, size int64) {
	off = int64(offs[i])
	for k := i + 1; k < uint64(len(offs)); k++ {
		if offs[k] != 0 {
			end = int64(offs[k])
			break
		}
	}
	return off, min(end-off, int64(paddedSize(maxRecord)))
}

// release gives back a reference taken to read f.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 && s.removed.Load() {
		s.close()
	}
}

// drop marks the segment removed and closes its file once no reader
// uses it.
func (s *segment) drop() {
	s.removed.Store(true)
	if s.refs.Load() == 0 {
		s.close()
	}
}

func (s *segment) close() error {
	s.closeOnce.Do(func() { s.closeErr = s.f.Close() })
	return s.closeErr
}

// chunkSize is how much of a segment the scanner reads at a time.
const chunkSize = 1 << 20

// fileReader reads a file through a buffer of at least chunkSize bytes
// (less for a smaller file), for sequential scans.
type fileReader struct {
	f      File
	size   int64
	buf    []byte
	bufOff int64 // file offset of buf[0]
}

func newFileReader(f File, size int64) *fileReader {
	return &fileReader{f: f, size: size}
}

// at returns up to n bytes at off (fewer only at the end of the file).
// The slice is valid until the next call.
func (r *fileReader) at(off int64, n int) ([]byte, error) {
	if off >= r.size {
		return nil, nil
	}
	if rem := r.size - off; int64(n) > rem {
		n = int(rem)
	}
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		return r.buf[off-r.bufOff : off-r.bufOff+int64(n)], nil
	}
	want := max(n, chunkSize)
	if rem := r.size - off; int64(want) > rem {
		want = int(rem)
	}
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	m, err := r.f.ReadAt(r.buf, off)
	if err != nil && !(errors.Is(err, io.EOF) && m == want) {
		r.buf = r.buf[:0]
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read at %d: file shorter than %d bytes", off, r.size)
		}
		return nil, err
	}
	r.bufOff = off
	return r.buf[:n], nil
}

// span is one damaged stretch a scan found in a segment.
type span struct {
	start, end int64
	reason     string
	// lostFrom..lostTo are the record indexes the stretch held, known
	// when a valid record follows it; lostFrom > lostTo if none or
	// unknown.
	lostFrom, lostTo uint64
	tail             bool // nothing valid follows in the file
}

// scanResult is what scanning one segment file found.
type scanResult struct {
	header  segHeader
	hdrOK   bool
	offsets []uint32
	records int
	end     int64 // end of the last valid record (segHeaderSize if none)
	damage  []span
}

// scanSegment reads a segment file of the given size and indexes its
// records. first comes from the file name; only records with indexes in
// [first, upper] count (upper is the next segment's first index - 1).
// Records are accepted in order: at a damaged spot it looks forward in
// 8-byte steps for the next valid record with a greater index, and no
// greater than the damaged bytes could have held. Memory is bounded by
// the chunk buffer, maxRecord and the file size.
func scanSegment(f File, size int64, first, upper uint64, maxRecord int) (scanResult, error) {
	res := scanResult{end: segHeaderSize}
	r := newFileReader(f, size)
	hb, err := r.at(0, segHeaderSize)
	if err != nil {
		return res, err
	}
	res.header, res.hdrOK = decodeSegHeader(hb)
	if res.hdrOK && res.header.first != first {
		res.hdrOK = false
	}
	lastGood := first - 1 // index of the last record accepted
	goodEnd := int64(segHeaderSize)
	pos := int64(segHeaderSize)
	badStart, reason := int64(-1), ""
	if !res.hdrOK {
		badStart, reason = 0, reasonSegHeader
		if size < segHeaderSize {
			res.damage = append(res.damage, span{start: 0, end: size, reason: reasonSegHeader, lostFrom: first, tail: true})
			return res, nil
		}
	}
	accept := func(index uint64, off int64, sz int) {
		if n := index - first; n > uint64(len(res.offsets)) {
			res.offsets = append(res.offsets, make([]uint32, n-uint64(len(res.offsets)))...)
		}
		res.offsets = append(res.offsets, uint32(off))
		res.records++
		lastGood, goodEnd, pos = index, off+int64(sz), off+int64(sz)
	}
	for pos < size {
		if badStart < 0 {
			index, sz, why, err := readRecord(r, pos, maxRecord)
			if err != nil {
				return res, err
			}
			if why == "" && (index != lastGood+1 || index > upper) {
				why = reasonIndex
			}
			if why == "" {
				accept(index, pos, sz)
				continue
			}
			badStart, reason = pos, why
			pos += align
			continue
		}
		// Resynchronising: is there a valid record at pos whose index
		// fits after lastGood, given the bytes skipped since goodEnd?
		// Each lost record took at least recHeaderSize bytes. The
		// header is checked first; the checksum only for a candidate.
		h, err := r.at(pos, recHeaderSize)
		if err != nil {
			return res, err
		}
		if len(h) < recHeaderSize {
			break
		}
		maxIndex := lastGood + 1 + uint64(pos-goodEnd)/recHeaderSize
		if maxIndex < lastGood || maxIndex > upper {
			maxIndex = upper
		}
		n := leUint32(h)
		if idx := leUint64(h[8:]); idx > lastGood && idx <= maxIndex &&
			uint64(n) <= uint64(maxRecord) && pos+int64(paddedSize(int(n))) <= size {
			index, sz, why, err := readRecord(r, pos, maxRecord)
			if err != nil {
				return res, err
			}
			if why == "" {
				res.damage = append(res.damage, span{start: badStart, end: pos, reason: reason, lostFrom: lastGood + 1, lostTo: index - 1})
				badStart = -1
				accept(index, pos, sz)
				continue
			}
		}
		pos += align
	}
	if badStart >= 0 {
		res.damage = append(res.damage, span{start: badStart, end: size, reason: reason, lostFrom: lastGood + 1, tail: true})
	}
	res.end = goodEnd
	return res, nil
}

// readRecord decodes the record at off: its index and padded size, or
// why there is no valid record there.
func readRecord(r *fileReader, off int64, maxRecord int) (index uint64, size int, reason string, err error) {
	h, err := r.at(off, recHeaderSize)
	if err != nil || len(h) < recHeaderSize {
		return 0, 0, reasonShortHeader, err
	}
	n := leUint32(h)
	if uint64(n) > uint64(maxRecord) {
		return 0, 0, reasonLength, nil
	}
	b, err := r.at(off, paddedSize(int(n)))
	if err != nil {
		return 0, 0, "", err
	}
	index, _, size, reason = decodeRecord(b, maxRecord)
	return index, size, reason, nil
}

func leUint32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func leUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
