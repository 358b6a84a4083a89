// Package queuetest holds test tools for the durable queue layer: FaultFS,
// an in-memory journal.FS that models what survives a power cut and fails
// chosen calls on purpose.
//
// # Durability model
//
// Every file has volatile content (what reads see) and durable content
// (what its last successful Sync persisted). Directory entries — files
// created, removed and renamed — are durable only after a SyncDir of
// their directory; until then they sit in an ordered log of pending
// directory operations. With [FaultFS.StrictDirs] a directory made by
// MkdirAll is such an entry of its parent, and a crash that loses it
// loses everything inside; by default new directories are durable at
// once.
//
// [FaultFS.Crash] returns the file system as a power cut would leave it:
// the durable entries plus a prefix of the pending directory log (file
// systems journal metadata in order), and for each file its durable
// content, or — with a random source — the durable content followed by a
// random prefix of the bytes written since (a torn write), sometimes with
// a stretch of that torn part replaced by zeros or random garbage. A
// failed Sync persists nothing and, as Linux does after an fsync error,
// marks the unsynced bytes clean: a later Sync that succeeds does not
// persist them either, so retrying an fsync proves nothing. With a nil source the crash keeps exactly
// what was synced.
//
// # Faults
//
// Every call is counted by operation ([Op]); [FaultFS.Inject] makes the
// N-th call of an operation (or every call from the N-th on) fail with a
// chosen error, a write optionally writing part of its bytes first.
// [FaultFS.SetHook] runs a function before every call, which may block
// (to hold a Sync while other work piles up) or return an error.
//
// Everything is deterministic: the only randomness is the source given to
// Crash.
package queuetest
