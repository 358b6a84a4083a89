package hub

import "sync/atomic"

// counters are the hub's running totals, updated atomically.
type counters struct {
	accepted, rejected atomic.Uint64
	inMsgs, outMsgs    atomic.Uint64
	inBytes, outBytes  atomic.Uint64
	slowConsumers      atomic.Uint64
	protoErrors        atomic.Uint64
	authFailures       atomic.Uint64
	denied, filtered   atomic.Uint64
	shmBad             atomic.Uint64
}

// Stats is a snapshot of the hub's counters.
type Stats struct {
	Connections   int    // currently open
	Accepted      uint64 // connections accepted since start
	Rejected      uint64 // connections refused (limits)
	Subscriptions int    // currently registered
	InMsgs        uint64 // messages published by clients
	OutMsgs       uint64 // messages delivered to subscriptions
	InBytes       uint64 // bytes read from clients
	OutBytes      uint64 // bytes written to clients
	SlowConsumers uint64 // connections closed as slow consumers
	ProtoErrors   uint64 // connections closed for protocol violations
	AuthFailures  uint64 // connections refused: bad or missing credentials, failed TLS, no grant, auth timeout
	Denied        uint64 // publishes and subscriptions refused by the policy
	Filtered      uint64 // deliveries withheld from wildcard subscriptions that cover denied subjects
	ShmRings      int    // shared-memory rings open
	ShmBad        uint64 // ring messages the forwarder dropped: torn, or a malformed frame
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	conns := len(h.clients)
	h.mu.Unlock()
	return Stats{
		Connections:   conns,
		Accepted:      h.stats.accepted.Load(),
		Rejected:      h.stats.rejected.Load(),
		Subscriptions: h.subs.Count(),
		InMsgs:        h.stats.inMsgs.Load(),
		OutMsgs:       h.stats.outMsgs.Load(),
		InBytes:       h.stats.inBytes.Load(),
		OutBytes:      h.stats.outBytes.Load(),
		SlowConsumers: h.stats.slowConsumers.Load(),
		ProtoErrors:   h.stats.protoErrors.Load(),
		AuthFailures:  h.stats.authFailures.Load(),
		Denied:        h.stats.denied.Load(),
		Filtered:      h.stats.filtered.Load(),
		ShmRings:      h.shm.count(),
		ShmBad:        h.stats.shmBad.Load(),
	}
}
