package journal_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"switchboard/queue/journal"
)

// loc is where a record is: its segment file, offset and padded size.
type loc struct {
	seg       string
	off, size int64
}

// built is a journal written to real files and closed.
type built struct {
	dir      string
	payloads map[uint64][]byte
	at       map[uint64]loc
}

func (b *built) path(seg string) string { return filepath.Join(b.dir, seg) }

// build appends n records (payload(i)) to a new journal in a temporary
// directory, records where each one went and closes it.
func build(t *testing.T, n int, opts journal.Options) *built {
	t.Helper()
	b := &built{dir: t.TempDir(), payloads: map[uint64][]byte{}, at: map[uint64]loc{}}
	j, _ := mustOpen(t, b.dir, opts)
	for i := 1; i <= n; i++ {
		idx, err := j.AppendSync(context.Background(), payload(i))
		if err != nil {
			t.Fatal(err)
		}
		seg, off, ok := journal.RecordOffset(j, idx)
		if !ok {
			t.Fatalf("record %d not found", idx)
		}
		b.payloads[idx] = payload(i)
		b.at[idx] = loc{seg, off, int64(journal.PaddedSize(len(payload(i))))}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return b
}

// reopen opens the journal again, logging to a buffer.
func (b *built) reopen(t *testing.T, opts journal.Options) (*journal.Journal, *journal.Recovery, string) {
	t.Helper()
	var logs bytes.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	j, rec := mustOpen(t, b.dir, opts)
	t.Cleanup(func() { j.Close() })
	return j, rec, logs.String()
}

// expect checks which records Read returns intact and which are lost.
func (b *built) expect(t *testing.T, j *journal.Journal, lost ...uint64) {
	t.Helper()
	isLost := map[uint64]bool{}
	for _, i := range lost {
		isLost[i] = true
	}
	var n uint64
	for i, p := range b.payloads {
		got, err := j.Read(i, nil)
		switch {
		case isLost[i]:
			if !errors.Is(err, journal.ErrLost) {
				t.Fatalf("Read %d: %q, %v; want ErrLost", i, got, err)
			}
		case err != nil || !bytes.Equal(got, p):
			t.Fatalf("Read %d = %q, %v; want %q", i, got, err, p)
		default:
			n++
		}
	}
	if st := j.Stats(); st.Records != n {
		t.Fatalf("Stats.Records = %d, want %d", st.Records, n)
	}
	if err := j.Check(); err != nil {
		t.Fatal(err)
	}
}

func modify(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func oneDamage(t *testing.T, rec *journal.Recovery, want journal.Damage) {
	t.Helper()
	if len(rec.Damage) != 1 || rec.Damage[0] != want {
		t.Fatalf("damage %+v\nwant [%+v]", rec.Damage, want)
	}
	if len(rec.Gaps) != 0 {
		t.Fatalf("gaps %+v", rec.Gaps)
	}
}

// TestTornTail: whatever is wrong at the end of the newest segment, with
// nothing valid after it, is cut off (file truncated to the end of the
// last whole record), reported byte for byte and logged; the next append
// goes in its place.
func TestTornTail(t *testing.T) {
	cases := []struct {
		name   string
		change func(b *built, data []byte) []byte
		start  func(b *built, size int64) int64 // damage start
		reason string
		kept   uint64 // records kept: 1..kept
	}{
		{"short payload", func(b *built, d []byte) []byte { return d[:b.at[10].off+journal.RecHeaderSize+3] },
			func(b *built, _ int64) int64 { return b.at[10].off }, "record runs past the end of the file", 9},
		{"short header", func(b *built, d []byte) []byte { return d[:b.at[10].off+5] },
			func(b *built, _ int64) int64 { return b.at[10].off }, "short record header", 9},
		{"padding missing", func(b *built, d []byte) []byte { return d[:b.at[10].off+b.at[10].size-1] },
			func(b *built, _ int64) int64 { return b.at[10].off }, "record runs past the end of the file", 9},
		{"garbage appended", func(b *built, d []byte) []byte {
			return append(d, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x01}, 20)...)
		}, func(_ *built, size int64) int64 { return size }, "bad record length", 10},
		{"zeros appended", func(b *built, d []byte) []byte { return append(d, make([]byte, 4096)...) },
			func(_ *built, size int64) int64 { return size }, "checksum mismatch", 10},
		{"last record flipped", func(b *built, d []byte) []byte {
			d[b.at[10].off+journal.RecHeaderSize+2] ^= 0x40
			return d
		}, func(b *built, _ int64) int64 { return b.at[10].off }, "checksum mismatch", 9},
		{"last length huge", func(b *built, d []byte) []byte {
			copy(d[b.at[10].off:], []byte{0xff, 0xff, 0xff, 0xff})
			return d
		}, func(b *built, _ int64) int64 { return b.at[10].off }, "bad record length", 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := build(t, 10, journal.Options{})
			seg := b.path(journal.SegName(1))
			size := fileSize(t, seg)
			if want := b.at[10].off + b.at[10].size; size != want {
				t.Fatalf("segment is %d bytes, records end at %d", size, want)
			}
			modify(t, seg, func(d []byte) []byte { return c.change(b, d) })
			newSize := fileSize(t, seg)
			j, rec, logs := b.reopen(t, journal.Options{})
			start := c.start(b, size)
			oneDamage(t, rec, journal.Damage{Segment: journal.SegName(1), Start: start, End: newSize,
				Reason: c.reason, Truncated: true})
			if got := fileSize(t, seg); got != start {
				t.Fatalf("segment is %d bytes after recovery, want %d", got, start)
			}
			for i := c.kept + 1; i <= 10; i++ {
				delete(b.payloads, i)
			}
			b.expect(t, j)
			if rec.Records != c.kept || j.Last() != c.kept {
				t.Fatalf("recovered %d records, Last %d; want %d", rec.Records, j.Last(), c.kept)
			}
			if !strings.Contains(logs, "torn tail cut off") || !strings.Contains(logs, "start="+itoa(start)) {
				t.Fatalf("log does not report the cut:\n%s", logs)
			}
			idx, err := j.AppendSync(context.Background(), []byte("next"))
			if err != nil || idx != c.kept+1 {
				t.Fatalf("append after recovery = %d, %v", idx, err)
			}
			if _, off, _ := journal.RecordOffset(j, idx); off != start {
				t.Fatalf("next record written at %d, want %d", off, start)
			}
			j.Close()
			_, rec, _ = b.reopen(t, journal.Options{})
			if len(rec.Damage) != 0 || rec.Last != c.kept+1 {
				t.Fatalf("second reopen: %+v", rec)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestMidLogCorruption: damage followed by valid records is skipped, not
// cut: the exact byte range and the indexes lost are reported, the
// records after it are kept, Read says ErrLost for the lost ones, appends
// go on after the last record, and a second Open reports the same.
func TestMidLogCorruption(t *testing.T) {
	cases := []struct {
		name   string
		change func(b *built, d []byte)
		from   uint64 // first damaged record
		to     uint64 // last damaged record
		reason string
	}{
		{"payload flipped", func(b *built, d []byte) { d[b.at[5].off+journal.RecHeaderSize] ^= 1 }, 5, 5, "checksum mismatch"},
		{"index changed", func(b *built, d []byte) { d[b.at[5].off+8] ^= 2 }, 5, 5, "checksum mismatch"},
		{"length huge", func(b *built, d []byte) { copy(d[b.at[3].off:], []byte{0xff, 0xff, 0xff, 0x7f}) }, 3, 3, "bad record length"},
		{"length off by 8", func(b *built, d []byte) { d[b.at[3].off] += 8 }, 3, 3, "checksum mismatch"},
		{"three zeroed", func(b *built, d []byte) { clear(d[b.at[3].off:b.at[6].off]) }, 3, 5, "checksum mismatch"},
		{"first record", func(b *built, d []byte) { d[b.at[1].off+4] ^= 0xff }, 1, 1, "checksum mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := build(t, 10, journal.Options{})
			seg := b.path(journal.SegName(1))
			size := fileSize(t, seg)
			modify(t, seg, func(d []byte) []byte { c.change(b, d); return d })
			for range 2 {
				j, rec, logs := b.reopen(t, journal.Options{})
				oneDamage(t, rec, journal.Damage{Segment: journal.SegName(1), Start: b.at[c.from].off,
					End: b.at[c.to+1].off, Reason: c.reason, FirstLost: c.from, LastLost: c.to})
				var lost []uint64
				for i := c.from; i <= c.to; i++ {
					lost = append(lost, i)
				}
				b.expect(t, j, lost...)
				if !strings.Contains(logs, "damaged records skipped") || !strings.Contains(logs, "first_lost="+itoa(int64(c.from))) {
					t.Fatalf("log does not report the loss:\n%s", logs)
				}
				if fileSize(t, seg) != size {
					t.Fatal("a segment with damage in the middle changed size")
				}
				var scanned []uint64
				if err := j.Scan(0, func(i uint64, _ []byte) error { scanned = append(scanned, i); return nil }); err != nil {
					t.Fatal(err)
				}
				if uint64(len(scanned)) != 10-(c.to-c.from+1) {
					t.Fatalf("Scan saw %v", scanned)
				}
				j.Close()
			}
			// Appending goes on after record 10; the damage stays reported.
			j, _, _ := b.reopen(t, journal.Options{})
			if idx, err := j.AppendSync(context.Background(), []byte("eleven")); err != nil || idx != 11 {
				t.Fatalf("append = %d, %v", idx, err)
			}
			j.Close()
			j, rec, _ := b.reopen(t, journal.Options{})
			if len(rec.Damage) != 1 || rec.Last != 11 {
				t.Fatalf("after an append: %+v", rec)
			}
			if got, _ := j.Read(11, nil); string(got) != "eleven" {
				t.Fatalf("Read 11 = %q", got)
			}
		})
	}
}

// multi builds a journal of 20 records of 1000 bytes in segments of
// 4 KiB: four to a segment, named 1, 5, 9, 13 and 17.
func multi(t *testing.T) *built {
	t.Helper()
	b := &built{dir: t.TempDir(), payloads: map[uint64][]byte{}, at: map[uint64]loc{}}
	j, _ := mustOpen(t, b.dir, journal.Options{SegmentSize: journal.MinSegmentSize})
	for i := 1; i <= 20; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 1000)
		idx, err := j.AppendSync(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		seg, off, _ := journal.RecordOffset(j, idx)
		b.payloads[idx] = p
		b.at[idx] = loc{seg, off, int64(journal.PaddedSize(len(p)))}
	}
	if st := j.Stats(); st.Segments != 5 {
		t.Fatalf("%d segments, want 5 of 4 records", st.Segments)
	}
	j.Close()
	return b
}

// TestSealedSegmentDamage: a damaged tail in an older segment is not cut
// (it is not where appends go); the indexes up to the next segment are
// reported lost.
func TestSealedSegmentDamage(t *testing.T) {
	b := multi(t)
	seg := b.path(journal.SegName(5)) // records 5..8
	size := fileSize(t, seg)
	modify(t, seg, func(d []byte) []byte { clear(d[b.at[7].off+100:]); return d }) // records 7 and 8
	j, rec, _ := b.reopen(t, journal.Options{SegmentSize: journal.MinSegmentSize})
	oneDamage(t, rec, journal.Damage{Segment: journal.SegName(5), Start: b.at[7].off, End: size,
		Reason: "checksum mismatch", FirstLost: 7, LastLost: 8})
	b.expect(t, j, 7, 8)
	if fileSize(t, seg) != size {
		t.Fatal("a sealed segment was truncated")
	}
}

// TestMissingSegment: a segment file gone from the middle is a gap, not
// an error.
func TestMissingSegment(t *testing.T) {
	b := multi(t)
	if err := os.Remove(b.path(journal.SegName(9))); err != nil {
		t.Fatal(err)
	}
	j, rec, logs := b.reopen(t, journal.Options{SegmentSize: journal.MinSegmentSize})
	if len(rec.Damage) != 0 || len(rec.Gaps) != 1 || rec.Gaps[0] != (journal.Gap{FirstLost: 9, LastLost: 12, Before: journal.SegName(13)}) {
		t.Fatalf("recovery %+v", rec)
	}
	if !strings.Contains(logs, "records missing between segments") {
		t.Fatalf("log:\n%s", logs)
	}
	b.expect(t, j, 9, 10, 11, 12)
	if j.First() != 1 || j.Last() != 20 {
		t.Fatalf("range [%d, %d]", j.First(), j.Last())
	}
}

// TestSegmentHeaderDamage: a damaged segment header loses no record: the
// records after it are found. The newest segment is then no longer
// appended to; if it held no record it is removed.
func TestSegmentHeaderDamage(t *testing.T) {
	t.Run("middle", func(t *testing.T) {
		b := multi(t)
		modify(t, b.path(journal.SegName(9)), func(d []byte) []byte { d[3] = 'X'; return d })
		j, rec, _ := b.reopen(t, journal.Options{SegmentSize: journal.MinSegmentSize})
		oneDamage(t, rec, journal.Damage{Segment: journal.SegName(9), Start: 0, End: journal.SegHeaderSize,
			Reason: "bad segment header"})
		b.expect(t, j)
	})
	t.Run("newest with records", func(t *testing.T) {
		b := multi(t)
		modify(t, b.path(journal.SegName(17)), func(d []byte) []byte { d[16]++; return d }) // first index
		j, rec, _ := b.reopen(t, journal.Options{SegmentSize: journal.MinSegmentSize})
		oneDamage(t, rec, journal.Damage{Segment: journal.SegName(17), Start: 0, End: journal.SegHeaderSize,
			Reason: "bad segment header"})
		b.expect(t, j)
		if idx, err := j.AppendSync(context.Background(), []byte("21")); err != nil || idx != 21 {
			t.Fatalf("append = %d, %v", idx, err)
		}
		if seg, _, _ := journal.RecordOffset(j, 21); seg != journal.SegName(21) {
			t.Fatalf("record 21 went to %s, not a new segment", seg)
		}
	})
	t.Run("newest empty", func(t *testing.T) {
		b := multi(t)
		// A newest segment with a damaged header and nothing else,
		// after a segment whose last two records are damaged.
		modify(t, b.path(journal.SegName(17)), func(d []byte) []byte { clear(d[b.at[19].off+20:]); return d })
		if err := os.WriteFile(b.path(journal.SegName(21)), make([]byte, journal.SegHeaderSize), 0o644); err != nil {
			t.Fatal(err)
		}
		j, rec, _ := b.reopen(t, journal.Options{SegmentSize: journal.MinSegmentSize})
		if len(rec.Removed) != 1 || rec.Removed[0] != journal.SegName(21) {
			t.Fatalf("removed %v", rec.Removed)
		}
		if len(rec.Damage) != 2 || rec.Damage[0] != (journal.Damage{Segment: journal.SegName(17), Start: b.at[19].off,
			End: b.at[20].off + b.at[20].size, Reason: "checksum mismatch", FirstLost: 19, LastLost: 20}) ||
			rec.Damage[1] != (journal.Damage{Segment: journal.SegName(21), Start: 0, End: journal.SegHeaderSize, Reason: "bad segment header"}) {
			t.Fatalf("damage %+v", rec.Damage)
		}
		b.expect(t, j, 19, 20)
		// Records 19 and 20 are lost for good; the next index is 21,
		// in a new segment.
		if idx, err := j.AppendSync(context.Background(), []byte("21")); err != nil || idx != 21 {
			t.Fatalf("append = %d, %v", idx, err)
		}
		j.Close()
		j, rec, _ = b.reopen(t, journal.Options{SegmentSize: journal.MinSegmentSize})
		if rec.Last != 21 {
			t.Fatalf("recovery %+v", rec)
		}
		b.payloads[21] = []byte("21")
		b.expect(t, j, 19, 20)
	})
}

// TestDirectoryContents: leftover temporary segments are removed, other
// files are left alone, wrongly named segment files make Open fail.
func TestDirectoryContents(t *testing.T) {
	b := multi(t)
	tmp := b.path(journal.SegName(21) + ".tmp")
	other := b.path("config.json")
	for _, p := range []string{tmp, other} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j, rec, _ := b.reopen(t, journal.Options{SegmentSize: journal.MinSegmentSize})
	if len(rec.Removed) != 1 || rec.Removed[0] != filepath.Base(tmp) {
		t.Fatalf("removed %v", rec.Removed)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary segment still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("unrelated file: %v", err)
	}
	j.Close()
	for _, bad := range []string{"123.seg", "00000000000000000000.seg", "0000000000000000000x.seg", "99999999999999999999.seg"} {
		p := b.path(bad)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := journal.Open(b.dir, journal.Options{Logger: quiet}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("Open with %s: %v", bad, err)
		}
		os.Remove(p)
	}
	if _, _, err := journal.Open(filepath.Join(other, "sub"), journal.Options{Logger: quiet}); err == nil {
		t.Fatal("Open under a regular file succeeded")
	}
}

// TestInterruptedReset: a segment marked as a reset makes every older
// segment obsolete, as when a crash stopped Reset before it removed
// them.
func TestInterruptedReset(t *testing.T) {
	b := multi(t)
	if err := os.WriteFile(b.path(journal.SegName(21)), journal.EncodeSegHeader(21, true), 0o644); err != nil {
		t.Fatal(err)
	}
	j, rec, _ := b.reopen(t, journal.Options{SegmentSize: journal.MinSegmentSize})
	want := []string{journal.SegName(1), journal.SegName(5), journal.SegName(9), journal.SegName(13), journal.SegName(17)}
	if strings.Join(rec.Removed, ",") != strings.Join(want, ",") || rec.First != 21 || rec.Last != 20 || rec.Records != 0 {
		t.Fatalf("recovery %+v", rec)
	}
	for i := uint64(1); i <= 20; i++ {
		if _, err := j.Read(i, nil); !errors.Is(err, journal.ErrRemoved) {
			t.Fatalf("Read %d: %v", i, err)
		}
	}
	names, _ := os.ReadDir(b.dir)
	if len(names) != 2 { // the reset segment and LOCK
		t.Fatalf("directory holds %v", names)
	}
}

// TestLengthBomb: a length field near 4 GiB (or just under MaxRecord in a
// small file) costs no memory to speak of.
func TestLengthBomb(t *testing.T) {
	for _, length := range []uint32{0xffff_fff0, journal.DefaultMaxRecord - 8} {
		b := build(t, 3, journal.Options{})
		seg := b.path(journal.SegName(1))
		modify(t, seg, func(d []byte) []byte {
			h := make([]byte, journal.RecHeaderSize)
			h[0], h[1], h[2], h[3] = byte(length), byte(length>>8), byte(length>>16), byte(length>>24)
			h[8] = 4
			return append(append(d, h...), make([]byte, 64)...)
		})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		j, rec, _ := b.reopen(t, journal.Options{})
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
			t.Fatalf("length %#x: Open allocated %d bytes", length, alloc)
		}
		if len(rec.Damage) != 1 || !rec.Damage[0].Truncated || rec.Records != 3 {
			t.Fatalf("length %#x: %+v", length, rec)
		}
		b.expect(t, j)
	}
}

// TestLock: a second Open of the same directory fails while the first is
// open (flock on the real file system).
func TestLock(t *testing.T) {
	dir := t.TempDir()
	j, _ := mustOpen(t, dir, journal.Options{})
	if _, _, err := journal.Open(dir, journal.Options{Logger: quiet}); !errors.Is(err, journal.ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	j.Close()
	j, _ = mustOpen(t, dir, journal.Options{})
	j.Close()
}

// TestResyncBound: after damage, a valid record is accepted only with an
// index the damaged bytes could have led up to (each lost record takes
// at least 16 bytes), so a stray record cannot stretch the index (or its
// memory) arbitrarily.
func TestResyncBound(t *testing.T) {
	cases := []struct {
		name  string
		gap   int    // garbage bytes after record 3
		index uint64 // index of the valid record after them
		kept  bool
	}{
		{"next index after 8 bytes", 8, 4, true},
		{"one lost in 16 bytes", 16, 5, true},
		{"one lost cannot fit in 8 bytes", 8, 5, false},
		{"a million ahead", 64, 1_000_000, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := build(t, 3, journal.Options{})
			seg := b.path(journal.SegName(1))
			end := fileSize(t, seg)
			modify(t, seg, func(d []byte) []byte {
				d = append(d, bytes.Repeat([]byte{0xee}, c.gap)...)
				return append(d, journal.EncodeRecord(c.index, []byte("stray"))...)
			})
			j, rec, _ := b.reopen(t, journal.Options{})
			if !c.kept {
				oneDamage(t, rec, journal.Damage{Segment: journal.SegName(1), Start: end, End: fileSize(t, seg) + int64(c.gap) + int64(journal.PaddedSize(5)),
					Reason: "bad record length", Truncated: true})
				if j.Last() != 3 {
					t.Fatalf("Last = %d", j.Last())
				}
				return
			}
			want := journal.Damage{Segment: journal.SegName(1), Start: end, End: end + int64(c.gap), Reason: "bad record length"}
			if c.index > 4 {
				want.FirstLost, want.LastLost = 4, c.index-1
			}
			oneDamage(t, rec, want)
			if got, err := j.Read(c.index, nil); string(got) != "stray" || j.Last() != c.index {
				t.Fatalf("Read %d = %q, %v; Last %d", c.index, got, err, j.Last())
			}
		})
	}
}
