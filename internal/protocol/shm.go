package protocol

import "time"

// Shared-memory control messages (Switchboard only; see docs/shm.md). The
// hub sends them as JSON to a client's control inbox, with memfds
// attached by SCM_RIGHTS; $SB.SHM.LIST answers with a list of channels.

// ShmControl is a control message from the hub to a client, sent as JSON
// to the client's control inbox. Fds says how many descriptors came with
// it (SCM_RIGHTS), in the order the op lists them.
type ShmControl struct {
	// Op is "hello" (shared memory is on), "ring" (fds: ring, hub cursor:
	// map Pattern's ring and seal it), "ready" (the first readers came
	// before it: start writing), "attach" (fds: ring, cursor: read it for
	// subscription Sid from sequence Start, as reader Reader), "reader" (fd: a reader's
	// cursor, Block or drop), "unreader" (that reader is gone) or "error".
	Op       string `json:"op"`
	Ring     uint64 `json:"ring,omitempty"`
	Pattern  string `json:"pattern,omitempty"`
	Sid      string `json:"sid,omitempty"`
	Start    uint64 `json:"start,omitempty"`
	Reader   uint64 `json:"reader,omitempty"`
	Block    bool   `json:"block,omitempty"`
	Explicit bool   `json:"explicit,omitempty"` // "ring": the answer to a PUB request
	Fds      int    `json:"fds,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ShmChannel describes one ring for $SB.SHM.LIST.
type ShmChannel struct {
	Ring      uint64      `json:"ring"`
	Pattern   string      `json:"pattern"`
	Publisher ShmPeer     `json:"publisher"`
	Readers   []ShmReader `json:"readers"`
	Slots     int         `json:"slots"`
	SlotSize  int         `json:"slot_size"`
	Ready     bool        `json:"ready"`
	Forwarder bool        `json:"forwarder"` // socket subscribers are being served
	Messages  uint64      `json:"messages"`  // as the publisher counts them in the ring
	Bytes     uint64      `json:"bytes"`
	Created   time.Time   `json:"created"`
}

// ShmPeer names a connection in ShmChannel.
type ShmPeer struct {
	Cid uint64 `json:"cid"`
	Who string `json:"who"`
}

// ShmReader is one attached reader in ShmChannel.
type ShmReader struct {
	ShmPeer
	Sid      string `json:"sid"`
	Reader   uint64 `json:"reader"` // the hub's id of the reader, as in attach and DETACHED
	Block    bool   `json:"block"`
	Position uint64 `json:"position"`
	// Ended: the subscription ended; the publisher still waits for this
	// cursor until the subscriber has emptied the ring (DETACHED).
	Ended bool `json:"ended,omitempty"`
}
