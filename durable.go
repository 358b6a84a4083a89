package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file is the typed API of the hub's durable queues ($SB.Q.
// requests, docs/queues.md). Any NATS client can make the same requests;
// these calls add types, errors and timeouts.

// QueueConfig configures a durable queue; zero fields take the hub's
// defaults (docs/queues.md lists them).
type QueueConfig struct {
	Name        string           `json:"name"`
	Subjects    []string         `json:"subjects,omitempty"`  // default: Name
	Retention   string           `json:"retention,omitempty"` // "work" (default) or "limits"
	MaxMsgs     int64            `json:"max_msgs,omitempty"`
	MaxBytes    int64            `json:"max_bytes,omitempty"`
	MaxAge      Duration         `json:"max_age,omitempty"`
	MaxMsgSize  int              `json:"max_msg_size,omitempty"`
	DedupWindow Duration         `json:"dedup_window,omitempty"` // default 2m; -1ns turns dedup off
	MaxDeliver  int              `json:"max_deliver,omitempty"`  // 0: no limit
	AckWait     Duration         `json:"ack_wait,omitempty"`     // default 30s
	DeadLetter  string           `json:"dead_letter,omitempty"`
	Sync        string           `json:"sync,omitempty"` // "always" (default), "interval", "never"
	Consumers   []ConsumerConfig `json:"consumers,omitempty"`
}

// ConsumerConfig is a named consumer. With DeliverSubject it is a push
// consumer: the hub delivers to that subject while fewer than MaxInFlight
// deliveries are unacknowledged.
type ConsumerConfig struct {
	Name           string   `json:"name"`
	DeliverSubject string   `json:"deliver_subject,omitempty"`
	MaxInFlight    int      `json:"max_in_flight,omitempty"`
	AckWait        Duration `json:"ack_wait,omitempty"`
}

// Duration is a time.Duration that travels as a string ("30s") in the
// queue API's JSON.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("duration %s: %w", b, err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// QueueInfo describes a queue.
type QueueInfo struct {
	Config    QueueConfig    `json:"config"`
	Messages  int64          `json:"messages"`
	Bytes     int64          `json:"bytes"`
	FirstSeq  uint64         `json:"first_seq"`
	LastSeq   uint64         `json:"last_seq"`
	Delayed   int            `json:"delayed"`
	Consumers []ConsumerInfo `json:"consumers"`
	Storage   struct {
		Segments    int    `json:"segments"`
		Bytes       int64  `json:"bytes"`
		Appends     uint64 `json:"appends"`
		Syncs       uint64 `json:"syncs"`
		BadRecords  int    `json:"bad_records,omitempty"`
		Recovery    string `json:"recovery,omitempty"`
		RecoveredIn string `json:"recovered_in"`
	} `json:"storage"`
	Error string `json:"error,omitempty"`
}

// ConsumerInfo describes a consumer.
type ConsumerInfo struct {
	Name           string `json:"name"`
	DeliverSubject string `json:"deliver_subject,omitempty"`
	InFlight       int    `json:"in_flight"`
	Waiting        int    `json:"waiting"`
	Redeliveries   int    `json:"redeliveries"`
	AckFloor       uint64 `json:"ack_floor"`
	MaxInFlight    int    `json:"max_in_flight"`
}

// PubAck is the hub's answer to a durable publish: the message is stored
// (fsynced, with the queue's default sync mode) under Seq.
type PubAck struct {
	Queue     string `json:"queue"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"` // the Msg-Id was seen within the dedup window: not stored again
}

// Errors of the queue API. A *QueueError matches one of them with
// errors.Is, by its code.
var (
	ErrQueueNotFound  = errors.New("switchboard: no such queue")
	ErrQueueExists    = errors.New("switchboard: queue already exists")
	ErrQueueConfig    = errors.New("switchboard: invalid queue configuration")
	ErrQueueFull      = errors.New("switchboard: queue full")
	ErrQueueStorage   = errors.New("switchboard: queue storage failed")
	ErrStaleDelivery  = errors.New("switchboard: not the current delivery of that message")
	ErrNoConsumer     = errors.New("switchboard: no such consumer")
	ErrQueueTooLarge  = errors.New("switchboard: message larger than the queue allows")
	ErrQueuesDisabled = errors.New("switchboard: the hub keeps no durable queues")
)

// QueueError is an error the hub returned for a queue request.
type QueueError struct {
	Code    string `json:"code"`  // stable: not_found, exists, bad_config, full, failed, stale, ...
	Message string `json:"error"` // the hub's text
	Queue   string `json:"queue,omitempty"`
}

func (e *QueueError) Error() string { return "switchboard: hub: " + e.Message }

// Is matches e to the sentinel of its code.
func (e *QueueError) Is(target error) bool {
	switch e.Code {
	case "not_found":
		return target == ErrQueueNotFound
	case "exists":
		return target == ErrQueueExists
	case "bad_config", "overlap", "immutable":
		return target == ErrQueueConfig
	case "full":
		return target == ErrQueueFull
	case "failed":
		return target == ErrQueueStorage
	case "stale":
		return target == ErrStaleDelivery
	case "no_consumer", "push_consumer":
		return target == ErrNoConsumer
	case "too_large":
		return target == ErrQueueTooLarge
	}
	return strings.Contains(e.Message, "durable queues are off") && target == ErrQueuesDisabled
}

// queueCall makes a $SB.Q. request and decodes the answer into out, or
// returns the hub's error.
func (c *Conn) queueCall(ctx context.Context, subj string, body any, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return fmt.Errorf("switchboard: %s: %w", subj, err)
		}
	}
	m, err := c.Request(ctx, subj, b)
	if err != nil {
		return err
	}
	return decodeQueueReply(m.Data, out)
}

func decodeQueueReply(data []byte, out any) error {
	var e QueueError
	if json.Unmarshal(data, &e) == nil && e.Message != "" {
		return &e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("switchboard: queue reply %q: %w", truncate(data, 80), err)
	}
	return nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// CreateQueue creates a durable queue. The hub stores every message
// published on its subjects from then on.
func (c *Conn) CreateQueue(ctx context.Context, cfg QueueConfig) (*QueueInfo, error) {
	var inf QueueInfo
	if err := c.queueCall(ctx, "$SB.Q.CREATE."+cfg.Name, cfg, &inf); err != nil {
		return nil, err
	}
	return &inf, nil
}

// UpdateQueue replaces a queue's configuration (its name, retention and
// sync mode cannot change).
func (c *Conn) UpdateQueue(ctx context.Context, cfg QueueConfig) (*QueueInfo, error) {
	var inf QueueInfo
	if err := c.queueCall(ctx, "$SB.Q.UPDATE."+cfg.Name, cfg, &inf); err != nil {
		return nil, err
	}
	return &inf, nil
}

// DeleteQueue deletes a queue and its stored messages.
func (c *Conn) DeleteQueue(ctx context.Context, name string) error {
	return c.queueCall(ctx, "$SB.Q.DELETE."+name, nil, nil)
}

// PurgeQueue removes every message of a queue.
func (c *Conn) PurgeQueue(ctx context.Context, name string) error {
	return c.queueCall(ctx, "$SB.Q.PURGE."+name, nil, nil)
}

// QueueInfo returns a queue's state.
func (c *Conn) QueueInfo(ctx context.Context, name string) (*QueueInfo, error) {
	var inf QueueInfo
	if err := c.queueCall(ctx, "$SB.Q.INFO."+name, nil, &inf); err != nil {
		return nil, err
	}
	return &inf, nil
}

// Queues lists every queue.
func (c *Conn) Queues(ctx context.Context) ([]QueueInfo, error) {
	var l struct {
		Queues []QueueInfo `json:"queues"`
	}
	if err := c.queueCall(ctx, "$SB.Q.LIST", nil, &l); err != nil {
		return nil, err
	}
	return l.Queues, nil
}

// AddConsumer adds (or replaces) a named consumer of queue.
func (c *Conn) AddConsumer(ctx context.Context, queue string, cc ConsumerConfig) (*QueueInfo, error) {
	var inf QueueInfo
	if err := c.queueCall(ctx, "$SB.Q.CONSUMER.ADD."+queue, cc, &inf); err != nil {
		return nil, err
	}
	return &inf, nil
}

// DeleteConsumer removes a consumer of queue.
func (c *Conn) DeleteConsumer(ctx context.Context, queue, name string) error {
	return c.queueCall(ctx, "$SB.Q.CONSUMER.DELETE."+queue+"."+name, nil, nil)
}
