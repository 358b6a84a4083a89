package journal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// On-disk format; docs/storage.md describes it byte by byte.
const (
	// segHeaderSize is the size of the header at the start of every
	// segment file; the first record starts right after it.
	segHeaderSize = 32
	// recHeaderSize is the size of a record header: length u32, crc u32,
	// index u64, all little-endian.
	recHeaderSize = 16
	// align is the alignment of every record in a segment.
	align = 8

	segMagic   = "SBJOURNL"
	segVersion = 1
	// flagReset in a segment header says that every segment with a
	// smaller first index is obsolete (written by Reset).
	flagReset = 1

	segExt = ".seg"
	tmpExt = ".tmp"
	// lockName is the lock file in a journal directory.
	lockName = "LOCK"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// paddedSize is the number of bytes a record with an n-byte payload
// takes in a segment: header, payload and zero padding to 8 bytes.
func paddedSize(n int) int { return (recHeaderSize + n + align - 1) &^ (align - 1) }

// payloadCRC is the CRC-32C of a payload, the first part of a record's
// checksum (computed by Append outside its lock).
func payloadCRC(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// recordCRC finishes a record's checksum: the CRC-32C of the payload
// followed by the little-endian length (4 bytes) and index (8 bytes).
func recordCRC(pcrc uint32, length uint32, index uint64) uint32 {
	var b [12]byte
	binary.LittleEndian.PutUint32(b[0:], length)
	binary.LittleEndian.PutUint64(b[4:], index)
	return crc32.Update(pcrc, castagnoli, b[:])
}

// appendRecord appends the encoded record (header, payload, padding) to
// dst; pcrc is payloadCRC(payload).
func appendRecord(dst []byte, index uint64, payload []byte, pcrc uint32) []byte {
	n := len(payload)
	var h [recHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(n))
	binary.LittleEndian.PutUint32(h[4:], recordCRC(pcrc, uint32(n), index))
	binary.LittleEndian.PutUint64(h[8:], index)
	dst = append(dst, h[:]...)
	dst = append(dst, payload...)
	var zero [align]byte
	return append(dst, zero[:paddedSize(n)-recHeaderSize-n]...)
}

// Reasons a record does not decode; they appear in Damage.Reason.
const (
	reasonShortHeader = "short record header"
	reasonLength      = "bad record length"
	reasonShort       = "record runs past the end of the file"
	reasonCRC         = "checksum mismatch"
	reasonIndex       = "index out of sequence"
	reasonSegHeader   = "bad segment header"
)

// decodeRecord decodes the record at the start of b. It returns the
// index, the payload (aliasing b) and the padded size, or a reason why b
// does not start with a whole, valid record no longer than maxRecord. It
// never reads or allocates more than b holds.
func decodeRecord(b []byte, maxRecord int) (index uint64, payload []byte, size int, reason string) {
	if len(b) < recHeaderSize {
		return 0, nil, 0, reasonShortHeader
	}
	n := binary.LittleEndian.Uint32(b[0:])
	if uint64(n) > uint64(maxRecord) {
		return 0, nil, 0, reasonLength
	}
	size = paddedSize(int(n))
	if size > len(b) {
		return 0, nil, 0, reasonShort
	}
	index = binary.LittleEndian.Uint64(b[8:])
	payload = b[recHeaderSize : recHeaderSize+int(n)]
	if recordCRC(payloadCRC(payload), n, index) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, nil, 0, reasonCRC
	}
	return index, payload, size, ""
}

// segHeader is the decoded header of a segment file.
type segHeader struct {
	first uint64
	reset bool
}

// encodeSegHeader returns the 32-byte header of a segment:
//
//	0  8  magic "SBJOURNL"
//	8  4  version (1), u32 LE
//	12 4  flags (bit 0: reset), u32 LE
//	16 8  first index, u64 LE
//	24 4  CRC-32C of bytes 0..24, u32 LE
//	28 4  zero
func encodeSegHeader(h segHeader) []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.LittleEndian.PutUint32(b[8:], segVersion)
	if h.reset {
		binary.LittleEndian.PutUint32(b[12:], flagReset)
	}
	binary.LittleEndian.PutUint64(b[16:], h.first)
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	return b
}

// decodeSegHeader checks a segment header; ok is false for anything but a
// valid version 1 header (unknown flags included).
func decodeSegHeader(b []byte) (h segHeader, ok bool) {
	if len(b) < segHeaderSize || string(b[:8]) != segMagic ||
		binary.LittleEndian.Uint32(b[8:]) != segVersion ||
		binary.LittleEndian.Uint32(b[24:]) != crc32.Checksum(b[:24], castagnoli) {
		return h, false
	}
	flags := binary.LittleEndian.Uint32(b[12:])
	if flags&^flagReset != 0 {
		return h, false
	}
	return segHeader{first: binary.LittleEndian.Uint64(b[16:]), reset: flags&flagReset != 0}, true
}

// segName is the file name of the segment whose first index is first.
func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segExt) }

// parseSegName returns the first index a segment file name stands for.
// ok is false for a name that is not a segment's (no .seg extension);
// err is set for a .seg name that is not 20 digits of a nonzero index.
func parseSegName(name string) (first uint64, ok bool, err error) {
	base, isSeg := strings.CutSuffix(name, segExt)
	if !isSeg {
		return 0, false, nil
	}
	if len(base) != 20 || strings.Trim(base, "0123456789") != "" {
		return 0, true, fmt.Errorf("journal: segment file %q is not named <20-digit first index>%s", name, segExt)
	}
	first, perr := strconv.ParseUint(base, 10, 64)
	if perr != nil || first == 0 {
		return 0, true, fmt.Errorf("journal: segment file %q names no valid first index", name)
	}
	return first, true, nil
}

// isSegTmp says whether name is a segment being created (left over by a
// crash before its rename).
func isSegTmp(name string) bool {
	base, ok := strings.CutSuffix(name, segExt+tmpExt)
	return ok && len(base) == 20 && strings.Trim(base, "0123456789") == ""
}
