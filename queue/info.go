package queue

import (
	"fmt"
	"time"

	"switchboard/queue/journal"
)

// Info describes a queue at one moment.
type Info struct {
	Config    Config         `json:"config"`
	Messages  int64          `json:"messages"`  // stored, not yet removed
	Bytes     int64          `json:"bytes"`     // their headers and payloads
	FirstSeq  uint64         `json:"first_seq"` // the oldest stored message's sequence (0: none)
	LastSeq   uint64         `json:"last_seq"`  // the journal's last index
	Delayed   int            `json:"delayed"`   // messages not to be delivered yet
	Consumers []ConsumerInfo `json:"consumers"`
	Storage   StorageInfo    `json:"storage"`
	// Error is set when the queue's storage failed: it then refuses
	// publishes and acks until the hub restarts.
	Error string `json:"error,omitempty"`
}

// ConsumerInfo describes a consumer.
type ConsumerInfo struct {
	Name           string `json:"name"`
	DeliverSubject string `json:"deliver_subject,omitempty"`
	InFlight       int    `json:"in_flight"`     // delivered, not yet acknowledged
	Waiting        int    `json:"waiting"`       // fetches waiting (pull)
	Redeliveries   int    `json:"redeliveries"`  // messages waiting to be delivered again (its group)
	AckFloor       uint64 `json:"ack_floor"`     // Limits: every message below is done
	MaxInFlight    int    `json:"max_in_flight"` // as configured
}

// StorageInfo is what the journal reports.
type StorageInfo struct {
	Segments    int    `json:"segments"`
	Bytes       int64  `json:"bytes"`
	Appends     uint64 `json:"appends"`
	Syncs       uint64 `json:"syncs"`
	BadRecords  int    `json:"bad_records,omitempty"` // records skipped at the last start
	Recovery    string `json:"recovery,omitempty"`    // what the last start repaired
	RecoveredIn string `json:"recovered_in"`          // how long opening the queue took at the last start: journal recovery and replay
}

// Info returns the queue's state.
func (q *Queue) Info() Info {
	st := q.j.Stats()
	q.mu.Lock()
	defer q.mu.Unlock()
	inf := Info{
		Config: q.cfg, Messages: q.count, Bytes: q.bytes, LastSeq: q.j.Last(), Delayed: len(q.delayed),
		Storage: StorageInfo{Segments: st.Segments, Bytes: st.Bytes, Appends: st.Appends, Syncs: st.Syncs, BadRecords: q.badRecs},
	}
	if q.count > 0 {
		inf.FirstSeq = q.firstLive()
	}
	if q.recov != nil {
		inf.Storage.Recovery = recoverySummary(q.recov)
	}
	inf.Storage.RecoveredIn = q.opened.Round(time.Microsecond).String()
	if q.failed != nil {
		inf.Error = q.failed.Error()
	}
	for _, cc := range append([]ConsumerConfig{{Name: DefaultConsumer}}, q.cfg.Consumers...) {
		c := q.consumers[cc.Name]
		if c == nil {
			continue
		}
		ci := ConsumerInfo{Name: c.cfg.Name, DeliverSubject: c.cfg.DeliverSubject, InFlight: c.inflight,
			Redeliveries: len(c.g.redo) + c.g.later.Len(), MaxInFlight: c.cfg.MaxInFlight}
		if c.g.name != "" {
			ci.AckFloor = c.g.floor
		}
		for _, p := range q.pulls {
			if p.c == c {
				ci.Waiting++
			}
		}
		inf.Consumers = append(inf.Consumers, ci)
	}
	return inf
}

// recoverySummary says in one line what Open repaired, or "" if nothing.
func recoverySummary(r *journal.Recovery) string {
	if len(r.Damage) == 0 && len(r.Gaps) == 0 && len(r.Removed) == 0 {
		return ""
	}
	s := ""
	for _, d := range r.Damage {
		s += fmt.Sprintf("%s bytes %d-%d: %s; ", d.Segment, d.Start, d.End, d.Reason)
	}
	for _, g := range r.Gaps {
		s += fmt.Sprintf("gap %v; ", g)
	}
	if len(r.Removed) > 0 {
		s += fmt.Sprintf("removed %v", r.Removed)
	}
	return s
}
