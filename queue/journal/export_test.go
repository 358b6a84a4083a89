package journal

// Internals for the external tests (package journal_test).

const (
	SegHeaderSize = segHeaderSize
	RecHeaderSize = recHeaderSize
)

// PaddedSize is the bytes a record with an n-byte payload takes.
func PaddedSize(n int) int { return paddedSize(n) }

// SegName is the file name of the segment starting at first.
func SegName(first uint64) string { return segName(first) }

// EncodeRecord returns a record as it is stored.
func EncodeRecord(index uint64, payload []byte) []byte {
	return appendRecord(nil, index, payload, payloadCRC(payload))
}

// DecodeRecord decodes the record at the start of b.
func DecodeRecord(b []byte, maxRecord int) (index uint64, payload []byte, size int, reason string) {
	return decodeRecord(b, maxRecord)
}

// EncodeSegHeader returns a segment header.
func EncodeSegHeader(first uint64, reset bool) []byte {
	return encodeSegHeader(segHeader{first: first, reset: reset})
}

// RecordOffset returns the segment file and offset of a visible record.
func RecordOffset(j *Journal, index uint64) (seg string, off int64, ok bool) {
	s, off, _, err := j.lookup(index)
	if err != nil {
		return "", 0, false
	}
	defer s.release()
	return s.name, off, true
}
