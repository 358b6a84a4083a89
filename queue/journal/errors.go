package journal

import "errors"

// Errors returned by the journal. Errors from the file system are wrapped,
// so errors.Is also finds their cause (for example syscall.EIO).
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("journal: closed")
	// ErrFailed is wrapped by every error of a journal that met an I/O
	// error on its write path: the journal is read-only from then on and
	// only a new Open brings it back (see Journal.Err).
	ErrFailed = errors.New("journal: failed")
	// ErrTooLarge is returned by Append for a record longer than
	// Options.MaxRecord.
	ErrTooLarge = errors.New("journal: record too large")
	// ErrNotFound is returned by Read for index 0 and for an index past
	// Last: a record that was never appended (or not acknowledged yet).
	ErrNotFound = errors.New("journal: no such record")
	// ErrRemoved is returned by Read for an index before First: the
	// record was dropped by RemoveBefore or Reset.
	ErrRemoved = errors.New("journal: record removed")
	// ErrLost is returned by Read for an index between First and Last
	// whose record recovery found damaged or missing (see Recovery).
	ErrLost = errors.New("journal: record lost")
	// ErrCorrupt is returned by Read and Scan when a record's bytes no
	// longer match its checksum (damaged on disk after Open).
	ErrCorrupt = errors.New("journal: corrupt record")
	// ErrLocked is returned by Open when another journal (in this or
	// another process) has the directory open.
	ErrLocked = errors.New("journal: directory in use")
)
