package journal

import (
	"fmt"
	"log/slog"
	"time"
)

// SyncMode says when an append is acknowledged (its done callback called
// with a nil error) and how often segment files are fsynced.
type SyncMode int

const (
	// SyncAlways, the default, acknowledges a record only after it was
	// written and fsynced: acknowledged means on disk. Concurrent
	// appends share one write and one fsync (group commit).
	SyncAlways SyncMode = iota
	// SyncInterval acknowledges a record once it is written to the
	// operating system and fsyncs at most every Options.SyncInterval:
	// a power cut (not a process crash) can lose the records acknowledged
	// in the last interval.
	SyncInterval
	// SyncNever acknowledges a record once it is written to the operating
	// system and fsyncs only when a segment is full and at Close: a power
	// cut can lose everything acknowledged since.
	SyncNever
)

// String returns "always", "interval" or "never".
func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}

// Limits and defaults of Options.
const (
	DefaultSegmentSize  = 64 << 20
	MinSegmentSize      = 4 << 10
	MaxSegmentSize      = 1 << 30
	DefaultMaxRecord    = 8 << 20
	MaxMaxRecord        = 256 << 20
	DefaultMaxPending   = 16 << 20
	DefaultSyncInterval = 100 * time.Millisecond
)

// Options configure a journal; the zero value is ready to use.
type Options struct {
	// FS is the file system; nil means OSFS, the real one.
	FS FS
	// SegmentSize is the size past which the journal starts a new
	// segment file: a record that would take the active segment past it
	// goes to a new one (a record bigger than SegmentSize alone in a
	// segment). Default DefaultSegmentSize (64 MiB); at least 4 KiB, at
	// most 1 GiB.
	SegmentSize int64
	// Sync is when appends are acknowledged; default SyncAlways.
	Sync SyncMode
	// SyncInterval is the most time between fsyncs with SyncInterval;
	// default 100 ms. Ignored by the other modes.
	SyncInterval time.Duration
	// MaxRecord is the largest record Append accepts and recovery
	// believes, in bytes; default 8 MiB, at most 256 MiB. Reopening a
	// journal with a smaller MaxRecord than it was written with turns
	// its longer records into damage.
	MaxRecord int
	// MaxPending bounds the bytes (encoded records) appended but not yet
	// acknowledged: past it Append blocks until the committer catches up
	// or its context ends. A record is always accepted when nothing is
	// pending. Default 16 MiB.
	MaxPending int
	// Logger receives the recovery report at Open (Info for the summary,
	// Warn for each damaged spot) and the failure that stops the journal
	// (Error); default slog.Default().
	Logger *slog.Logger
}

// withDefaults fills in defaults and checks the ranges.
func (o Options) withDefaults() (Options, error) {
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SegmentSize < MinSegmentSize || o.SegmentSize > MaxSegmentSize {
		return o, fmt.Errorf("journal: SegmentSize %d outside [%d, %d]", o.SegmentSize, MinSegmentSize, MaxSegmentSize)
	}
	if o.Sync < SyncAlways || o.Sync > SyncNever {
		return o, fmt.Errorf("journal: unknown sync mode %d", int(o.Sync))
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.SyncInterval < 0 {
		return o, fmt.Errorf("journal: negative SyncInterval %v", o.SyncInterval)
	}
	if o.MaxRecord == 0 {
		o.MaxRecord = DefaultMaxRecord
	}
	if o.MaxRecord < 0 || o.MaxRecord > MaxMaxRecord {
		return o, fmt.Errorf("journal: MaxRecord %d outside [0, %d]", o.MaxRecord, MaxMaxRecord)
	}
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxPending < 0 {
		return o, fmt.Errorf("journal: negative MaxPending %d", o.MaxPending)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}
