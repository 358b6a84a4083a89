// Package shm is the shared-memory data path of Switchboard: the ring
// layout, sealed memfd regions and futex wake-ups. It knows nothing about
// the hub, subjects or policy; the hub creates rings with this package and
// hands their file descriptors to peers over a unix socket.
//
// # Rings
//
// A ring is one memory region: a header of [HeaderSize] bytes followed by N
// slots, N a power of two. A slot holds records, each one message: small
// ones packed into the slot's first [PackBytes], or one of up to S payload
// bytes; N and S are fixed when the ring is created ([Init], [Create]).
// There is one writer (the publisher) and any number of readers
// (subscribers). Readers map the region read-only and keep their position
// in their own memory, so the ring is a broadcast ring: by default the
// writer never waits for readers. A reader that falls a whole ring behind
// is lapped and told how many messages it missed ([Msg].Missed); it is
// never silent. Readers that publish their position in a cursor block
// (below) can ask the writer to wait for them instead.
//
// # Layout
//
// All multi-byte fields are little-endian (the package refuses to run on a
// big-endian machine, [ErrUnsupported]) and naturally aligned. The header
// is four 64-byte lines so the fields the writer updates on every message
// do not share a cache line with the fields readers only read once:
//
//	offset  size  field
//	     0     8  magic "SBSHMRNG"            (OffMagic)
//	     8     4  layout version = 2          (OffVersion)
//	    12     4  slot count N                (OffSlots)
//	    16     4  slot payload size S         (OffSlotSize)
//	    20     4  slot stride                 (OffStride)
//	    24     4  offset of slot 0 = 256      (OffDataStart)
//	    64     8  slots begun                 (OffSlotSeq)
//	   128     8  messages published          (OffMessages)
//	   136     8  payload bytes published     (OffBytes)
//	   192     4  futex word                  (OffFutex)
//	   196     4  closed flag                 (OffClosed)
//	   200     4  writer waiting for a reader (OffWriterWaiting)
//
// Slot i starts at DataStart + i*stride and holds the slot the writer
// began as slot sequence s, where i = s & (N-1):
//
//	offset  size  field
//	     0     8  slot sequence word: 2s+1 begun, 2s+2 full (SlotOffSeq)
//	     8     8  number of the slot's first message        (SlotOffFirst)
//	    16     -  records                                   (SlotOffRecords)
//
// A record is an 8-byte record word (length, bare flag, the tag s mod
// 2^28, where the next record starts, end and valid bits; see
// RecordHeaderSize) and the payload, padded to 8 bytes.
//
// # Publishing
//
// To publish a message the writer finds room in the slot it is in, or
// ends that slot and begins the next (2s+1 into its sequence word, the
// message's number into its header). It stores zero where the record
// after this one will start, writes the payload, then stores the record
// word: the commit. It updates the counters. A record after which another
// of its size would not fit ends its slot (it is marked the slot's last);
// in a ring of 8 slots or more the writer then begins the next slot at
// once, unless a blocking reader still needs a message that beginning it
// overwrites. It increments the futex word and issues FUTEX_WAKE: on
// every [Writer.Send] for a writer that does not track its readers (one
// syscall, see BenchmarkPublish16B against BenchmarkPublish16BNoWake),
// only when a reader's cursor says it sleeps for one that does (below).
// [Writer.Commit] plus one [Writer.Wake] per batch amortises the wake-up.
//
// # Reading
//
// A reader loads the record word at its place. A word with its slot's tag
// is the next message (the last of its slot if it says so: the reader
// goes on to the next slot after it); the end word sends it to the next
// slot; anything
// else sends it to the slot sequence word: begun means nothing new yet,
// full with no record means corruption (counted, the slot is skipped,
// [ErrCorrupt]), a later lap means the reader was overtaken: it goes on
// to the next slot if that still holds its lap, else a quarter ring past
// the oldest slot, and counts the messages it lost from their numbers.
// Every length is loaded once and checked against the slot before the
// payload is sliced.
//
// [Reader.Next] and [Reader.TryNext] return a read-only view of the
// record, valid until [Reader.Release] (or the next call to
// Next/TryNext). The writer may begin the slot again at any time while
// the view is held: Release reloads the slot sequence word and reports
// whether the slot still held the view's lap. If it returns false the
// bytes the caller saw may be torn and must be discarded. [Reader.Recv]
// copies and validates for callers that want no such care; a copy torn by
// an overwrite is discarded and counted as missed.
//
// # Hostile peers
//
// Every index and length read from shared memory is loaded once into a
// local and bounds-checked before use; the geometry (N, S, stride) is
// validated once when a reader is created and never reread. A peer that
// scribbles arbitrary bytes over the ring can make a reader see garbage
// payloads, large missed counts and [ErrCorrupt], but never a panic, an
// out-of-bounds read or an endless loop: each TryNext does a bounded amount
// of work and always advances or returns.
//
// # Wake-ups
//
// [Reader.Next] first spins, polling its place in the ring and yielding the
// processor (runtime.Gosched) every few dozen polls, then sleeps in
// FUTEX_WAIT on the shared futex word (not FUTEX_PRIVATE: the word is
// shared between processes). A futex round trip adds ~10 µs; a spin that
// finds the message adds nothing. The spin budget is time-based and
// adaptive ([Spin]): it starts at 50 µs, doubles when a message arrived
// while spinning and halves when the reader had to sleep, down to 2 µs,
// and every eighth sleep in a row is followed by one full 50 µs spin (a
// probe). A busy stream keeps spinning and an idle subscriber spends
// about 8 µs per wake-up on average (2 µs, and a probe every eighth). On
// GOMAXPROCS <= 2 the yields matter: without them a spinning reader would
// keep the writer's goroutine in the same process off the core. Two processes ping-ponging on two cores each spin
// on their own core. Sleeps are bounded (100 ms) and a cancelled context
// wakes the sleeper at once, so ctx is honoured and an idle reader costs
// about no CPU.
//
// # Cursors
//
// Readers cannot write the ring, so each reader that wants the writer to
// know about it gets a cursor block: one page in its own memfd
// ([CreateCursor], [OpenCursor]), sealed against resizing, which the reader
// maps read-write and the writer read-only. It holds the reader's position
// (the lowest sequence it may still access), a "sleeping" flag and a futex
// word:
//
//	offset  size  field
//	     0     8  magic "SBSHMCUR"            (CurOffMagic)
//	     8     4  layout version = 2          (CurOffVersion)
//	    64     8  position                    (CurOffPosition)
//	    72     4  futex word                  (CurOffFutex)
//	   128     4  sleeping: futex value + 1    (CurOffSleeping)
//
// [Reader.AttachCursor] makes the reader publish its position as it moves
// and set the flag
// around FUTEX_WAIT. [Writer.AddReader] switches the writer to tracked
// mode: Send makes the FUTEX_WAKE syscall only if a tracked reader sleeps
// (a store of the record word, then a load of the flags, against the
// reader's store of its flag, then a load of the record word: Dekker's
// argument, with a full barrier on each side; on x86 the writer's is
// supplied by the reader's membarrier(2), see [Writer.Wake]). Every
// reader of a tracked ring needs a tracked cursor; one without is only
// noticed when its 100 ms sleep ends. A [Waiter] waits for many readers
// at once, in one futex_waitv(2).
//
// A reader added with block set is never lapped: before [Writer.Loan]
// overwrites a message such a reader has not finished, the writer waits,
// spinning for an adaptive 20–200 µs, then setting the writer-waiting
// flag in the ring header and sleeping on the reader's cursor futex,
// which the reader bumps and wakes when it advances. After the block timeout ([Writer.SetBlockTimeout],
// [DefaultBlockTimeout]) the writer demotes the reader to drop, so a hung
// or hostile reader stalls it at most that long per loan; [Writer.LoanCtx]
// also ends the wait with a context. Positions are hostile input: one
// beyond the messages published counts as caught up, one far behind costs one
// timeout, none is ever used as an index.
//
// # Memory regions
//
// [Create] makes a ring in a memfd sealed against shrinking, growing and
// further sealing (and against new writable mappings where the kernel
// supports F_SEAL_FUTURE_WRITE), mapped read-write for the writer.
// [OpenReader] accepts such a file descriptor from a peer, checks the seals,
// the size and the header, and maps it read-only. [Init], [NewWriter] and
// [NewReader] work on any 8-byte aligned []byte, which tests use.
//
// For a ring whose writer is another process, [CreateUnsealed] seals only
// the size; the writer opens the fd with [OpenWriter], which maps it
// read-write and then seals it like Create; the creator checks
// [Region.Sealed] before it hands the fd to readers, reads the counters
// ([Region.Stats]) and can close the ring if the writer dies
// ([Region.CloseRing]).
//
// # Frames
//
// [PutFrame], [ParseFrame] and [Writer.PublishFrame] encode a message with
// a subject, a reply subject and a NATS header block in a slot payload: a
// 12-byte header (subject length, reply length, header block length,
// reserved), the two subjects, then the body.
//
// # Concurrency
//
// A [Writer] and each [Reader] are used by one goroutine at a time; any
// number of readers, in any number of processes, may read one ring while its
// writer writes. The writer's reader set ([Writer.AddReader],
// [Writer.RemoveReader]) may change from another goroutine while it
// publishes. The payload copy races with the writer by design (a
// seqlock); the sequence words make the race detectable, not absent.
package shm
