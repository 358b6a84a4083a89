// Package frames is the shared-memory scenario: a video editor hands
// 4 MiB frames to a preview renderer on the same machine. Both programs
// connect to a Switchboard hub over its unix socket; the editor gets a
// Publisher with a ring of 4 slots of 4 MiB (NewPublisher) and renders
// each frame straight into the ring's slot (Loan, then Send), so
// publishing copies nothing and the frame never crosses the socket. The
// renderer subscribes as usual and gets each frame as an ordinary *Msg,
// copied once out of the ring.
//
// The frame is a test pattern (Paint): the frame number in its first 8
// bytes and one byte every 4 KiB derived from it. The renderer checks
// every frame (Check), counts frames that are corrupt, missing (gaps in
// the frame numbers) or out of order, and prints what it saw once a
// second and when it stops.
//
// By default the editor waits for a renderer that falls a whole ring (4
// frames) behind, as it would for a full socket. Start the renderer with
// -drop to let the editor overwrite what it has not read instead
// (Options.ShmDrop): it then loses the oldest frames and is told how many
// (the "dropped" count).
//
// Start the editor with -no-shm to send the frames over the socket
// instead, for comparison. The hub must then accept 4 MiB messages, which
// is why it is started with a larger --max-payload (the default is 1 MiB).
// Over the socket the hub does not hold the editor back for the renderer: a
// renderer that falls more than the hub's --max-pending (64 MiB, 16 frames)
// behind is cut off as a slow consumer, says so, and misses the frames sent
// until it has reconnected.
//
//	switchboard serve --max-payload 8MiB &
//	go run ./examples/frames/renderer -frames 120 &
//	go run ./examples/frames/editor -frames 120 -fps 60
//
// The test in this directory runs the hub and both programs as real
// processes and checks that 60 frames arrive intact and in order through
// shared memory.
package frames
