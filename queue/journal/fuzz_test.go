package journal_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"

	"switchboard/queue/journal"
	"switchboard/queue/queuetest"
)

// validSegment returns the bytes of a segment file holding records
// first..first+n-1, as the journal writes them.
func validSegment(first uint64, n int, reset bool) []byte {
	b := journal.EncodeSegHeader(first, reset)
	for i := range n {
		b = append(b, journal.EncodeRecord(first+uint64(i), payload(i))...)
	}
	return b
}

// FuzzOpen writes arbitrary bytes as one or two segment files and opens
// the journal: Open must succeed without panicking, with bounded memory;
// every record it keeps must decode, with the same index and payload,
// from the file bytes at the offset the index says; damage ranges must
// lie within the files, in order; and after an append and a reopen every
// record is still there.
func FuzzOpen(f *testing.F) {
	seg := validSegment(1, 5, false)
	f.Add(byte(0), seg, []byte(nil))
	f.Add(byte(0), seg[:len(seg)-3], []byte(nil))
	f.Add(byte(1), seg[journal.SegHeaderSize:], []byte(nil))
	flipped := bytes.Clone(seg)
	flipped[journal.SegHeaderSize+40] ^= 1
	f.Add(byte(2), flipped, validSegment(100, 3, false))
	f.Add(byte(2), seg, validSegment(100, 3, true))
	f.Add(byte(2), seg, []byte{})
	f.Add(byte(1), append(journal.EncodeRecord(1, nil), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 2), []byte(nil))
	f.Add(byte(0), []byte{}, []byte(nil))
	f.Fuzz(func(t *testing.T, flags byte, a, b []byte) {
		if len(a)+len(b) > 1<<20 {
			return
		}
		ffs := queuetest.New().StrictDirs()
		files := map[string][]byte{}
		if flags&1 != 0 {
			a = append(journal.EncodeSegHeader(1, false), a...)
		}
		files[journal.SegName(1)] = a
		if flags&2 != 0 {
			files[journal.SegName(100)] = b
		}
		for name, data := range files {
			ffs.WriteFile("/q/"+name, data)
		}
		opts := journal.Options{FS: ffs, MaxRecord: 1 << 16, Logger: quiet}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		j, rec, err := journal.Open("/q", opts)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20+64*uint64(len(a)+len(b)) {
			t.Fatalf("Open of %d bytes allocated %d", len(a)+len(b), alloc)
		}
		for k, d := range rec.Damage {
			size := int64(len(files[d.Segment]))
			empty := d.Start == d.End && size < journal.SegHeaderSize // a file too short for a header
			if d.Start < 0 || d.Start >= d.End && !empty || d.End > size {
				t.Fatalf("damage %+v outside its file of %d bytes", d, size)
			}
			if k > 0 && rec.Damage[k-1].Segment == d.Segment && rec.Damage[k-1].End > d.Start {
				t.Fatalf("damage out of order: %+v", rec.Damage)
			}
		}
		kept := map[uint64][]byte{}
		err = j.Scan(0, func(i uint64, p []byte) error {
			seg, off, ok := journal.RecordOffset(j, i)
			if !ok {
				t.Fatalf("record %d scanned but not found", i)
			}
			raw := files[seg]
			if off < journal.SegHeaderSize || off%8 != 0 || off > int64(len(raw)) {
				t.Fatalf("record %d at offset %d of %s (%d bytes)", i, off, seg, len(raw))
			}
			idx, payload, _, why := journal.DecodeRecord(raw[off:], opts.MaxRecord)
			if why != "" || idx != i || !bytes.Equal(payload, p) {
				t.Fatalf("record %d at %s:%d does not decode from the file: %d %q %s", i, seg, off, idx, payload, why)
			}
			kept[i] = bytes.Clone(p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(kept)) != rec.Records {
			t.Fatalf("scanned %d records, recovery says %d", len(kept), rec.Records)
		}
		idx, err := j.AppendSync(context.Background(), []byte("appended"))
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		for i := range kept {
			if i >= idx {
				t.Fatalf("append got index %d, record %d exists", idx, i)
			}
		}
		kept[idx] = []byte("appended")
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		j, rec, err = journal.Open("/q", opts)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer j.Close()
		for _, d := range rec.Damage {
			if d.Truncated {
				t.Fatalf("a tail to cut after recovery and an append: %+v", d)
			}
		}
		for i, p := range kept {
			if got, err := j.Read(i, nil); err != nil || !bytes.Equal(got, p) {
				t.Fatalf("after reopen, Read %d = %q, %v; want %q", i, got, err, p)
			}
		}
	})
}

// FuzzDecodeRecord: the record decoder never reads past its input, and
// whatever it accepts encodes back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(journal.EncodeRecord(1, []byte("hello")), uint16(100))
	f.Add(journal.EncodeRecord(1<<60, nil), uint16(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(10))
	f.Fuzz(func(t *testing.T, b []byte, maxRecord uint16) {
		index, payload, size, why := journal.DecodeRecord(b, int(maxRecord))
		if why != "" {
			if size != 0 || payload != nil {
				t.Fatalf("rejected (%s) but returned %d bytes", why, size)
			}
			return
		}
		if size > len(b) || size%8 != 0 || len(payload) > int(maxRecord) || size != journal.PaddedSize(len(payload)) {
			t.Fatalf("size %d of %d bytes, payload %d, max %d", size, len(b), len(payload), maxRecord)
		}
		enc := journal.EncodeRecord(index, payload)
		if !bytes.Equal(enc[:journal.RecHeaderSize+len(payload)], b[:journal.RecHeaderSize+len(payload)]) {
			t.Fatalf("accepted %x, re-encodes as %x", b[:size], enc)
		}
	})
}
