// Package journal is the storage of a durable queue: an append-only log of
// opaque records, in segment files in one directory, with group commit
// and crash recovery. It knows nothing about queues or the protocol; the
// queue layer keeps one journal per queue and decides what its records
// mean. docs/storage.md describes the format and the guarantees in full.
//
// # Records and indexes
//
// Every record gets an index: dense, starting at 1, in the order Append
// is called, and never reused — not after RemoveBefore, Reset or a
// crash, except that the indexes of records torn off unacknowledged by a
// crash are given again. Read and Scan see a record once it is
// acknowledged; First and Last bound the indexes kept.
//
// # Durability
//
// "Acknowledged means on disk": with SyncAlways (the default) an append's
// done callback gets a nil error only after its record was written and
// fsynced. Appends from many goroutines, and many pipelined appends from
// one, are written by one committer goroutine in batches: everything
// appended while the previous batch was being written and fsynced goes
// out in one write and one fsync. SyncInterval and SyncNever acknowledge
// after the write and fsync later, trading what a power cut can lose for
// speed.
//
// Any failed write, fsync, file creation, rename, removal or directory
// fsync puts the journal in a permanent failed state: the appends in
// flight and every later one fail with an error wrapping ErrFailed and
// the cause, never with nil. Reads keep working; a new Open is the way
// back.
//
// # Recovery
//
// Open rebuilds an in-memory index (first index and the offset of every
// record of each segment) by reading every segment, checks every
// record's CRC-32C, cuts a torn tail off the newest segment, skips
// damaged stretches in the middle (finding the next valid record by
// stepping 8 bytes at a time) and reports all of it in a Recovery, which
// it also logs. A damaged record never stops Open.
//
// # Concurrency
//
// All methods are safe for concurrent use. Append returns at once unless
// more than Options.MaxPending bytes are pending. Done callbacks run one
// at a time on the committer goroutine, in index order; RemoveBefore and
// Reset are carried out there too, between batches, after the appends
// made before them. Read and Scan run on the caller's goroutine and do
// not wait for the committer. Only one Journal may have a directory open
// at a time: Open takes a lock file (flock) and fails with ErrLocked.
package journal
