package queue

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"switchboard/internal/subject"
	"switchboard/queue/journal"
)

// Retention says when a message leaves a queue.
type Retention string

const (
	// Work, the default: a message is removed once a consumer acknowledged
	// it (or it was terminated or dead-lettered). All consumers of a work
	// queue share one position: each message goes to one of them.
	Work Retention = "work"
	// Limits: messages stay until MaxMsgs, MaxBytes or MaxAge removes the
	// oldest. Each consumer has its own position and acknowledgements.
	Limits Retention = "limits"
)

// Defaults and limits of Config.
const (
	DefaultAckWait     = 30 * time.Second
	DefaultDedupWindow = 2 * time.Minute
	DefaultMaxMsgSize  = 1 << 20
	MaxMaxMsgSize      = 8<<20 - 4096 // what a journal record holds, less the record's own fields
	DefaultMaxInFlight = 1000
	maxMaxInFlight     = 100_000
	maxNameLen         = 64
	maxSubjects        = 64
	maxConsumers       = 256
)

// Duration is a time.Duration that JSON writes as a Go duration string
// ("30s") and reads from a string or a number of nanoseconds.
type Duration time.Duration

// MarshalJSON writes d as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "1m30s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration %s: want a string such as \"30s\" or nanoseconds", b)
	}
	*d = Duration(v)
	return nil
}

// Config is a queue's configuration; the zero value of every field but
// Name means its default. It is stored as JSON beside the queue's journal
// and travels as JSON in $SB.Q. requests (docs/queues.md).
type Config struct {
	// Name is 1 to 64 characters of letters, digits, '-' and '_'.
	Name string `json:"name"`
	// Subjects are the subjects (wildcards allowed) whose messages the
	// queue stores; default: Name alone. They may not start with "$SB."
	// nor overlap another queue's.
	Subjects []string `json:"subjects,omitempty"`
	// Retention is Work (default) or Limits.
	Retention Retention `json:"retention,omitempty"`
	// MaxMsgs, MaxBytes and MaxAge bound a Limits queue (and a Work queue:
	// a publish past MaxMsgs or MaxBytes is refused, and messages older
	// than MaxAge are removed); 0 means no bound.
	MaxMsgs  int64    `json:"max_msgs,omitempty"`
	MaxBytes int64    `json:"max_bytes,omitempty"`
	MaxAge   Duration `json:"max_age,omitempty"`
	// MaxMsgSize is the largest message (headers and payload); default
	// 1 MiB.
	MaxMsgSize int `json:"max_msg_size,omitempty"`
	// DedupWindow is how long a Msg-Id header is remembered; default 2m,
	// -1 turns deduplication off.
	DedupWindow Duration `json:"dedup_window,omitempty"`
	// MaxDeliver is how many times a message is delivered before it goes
	// to DeadLetter (or, without one, is dropped with a log line);
	// 0 means no limit.
	MaxDeliver int `json:"max_deliver,omitempty"`
	// AckWait is how long a delivery may stay unacknowledged before the
	// message is delivered again; default 30s.
	AckWait Duration `json:"ack_wait,omitempty"`
	// DeadLetter names the queue that receives messages that reached
	// MaxDeliver or were terminated; "" for none.
	DeadLetter string `json:"dead_letter,omitempty"`
	// Sync is "always" (default: a publish is acknowledged once fsynced),
	// "interval" or "never" (acknowledged once written; weaker, see
	// docs/storage.md).
	Sync string `json:"sync,omitempty"`
	// Consumers are the queue's named consumers. A pull consumer named
	// "default" always exists without being listed.
	Consumers []ConsumerConfig `json:"consumers,omitempty"`
}

// ConsumerConfig is a named consumer of a queue.
type ConsumerConfig struct {
	// Name is 1 to 64 characters of letters, digits, '-' and '_'.
	Name string `json:"name"`
	// DeliverSubject makes a push consumer: the hub delivers to this
	// subject (subscribe to it, typically in a queue group) as long as
	// fewer than MaxInFlight deliveries are unacknowledged. Empty: a
	// pull consumer, which receives what it fetches.
	DeliverSubject string `json:"deliver_subject,omitempty"`
	// MaxInFlight bounds the unacknowledged deliveries of the consumer;
	// default 1000.
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// AckWait overrides the queue's AckWait for this consumer.
	AckWait Duration `json:"ack_wait,omitempty"`
}

// DefaultConsumer is the pull consumer every queue has.
const DefaultConsumer = "default"

// validName reports whether s may name a queue or a consumer: it becomes
// a subject token and a directory name.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// withDefaults returns c with its defaults filled in, or an error naming
// the first invalid field.
func (c Config) withDefaults() (Config, error) {
	if !validName(c.Name) {
		return c, fmt.Errorf("%w: name %q: 1 to %d letters, digits, '-' or '_'", ErrBadConfig, c.Name, maxNameLen)
	}
	if len(c.Subjects) == 0 {
		c.Subjects = []string{c.Name}
	}
	if len(c.Subjects) > maxSubjects {
		return c, fmt.Errorf("%w: %d subjects, at most %d", ErrBadConfig, len(c.Subjects), maxSubjects)
	}
	for i, s := range c.Subjects {
		if !subject.ValidSubscribe([]byte(s)) {
			return c, fmt.Errorf("%w: subject %q is not a valid subject", ErrBadConfig, s)
		}
		if s == "$SB" || strings.HasPrefix(s, "$SB.") {
			return c, fmt.Errorf("%w: subject %q: the hub's own subjects ($SB.) cannot be stored", ErrBadConfig, s)
		}
		for _, o := range c.Subjects[:i] {
			if subject.Overlap(s, o) {
				return c, fmt.Errorf("%w: subjects %q and %q overlap", ErrBadConfig, o, s)
			}
		}
	}
	switch c.Retention {
	case "":
		c.Retention = Work
	case Work, Limits:
	default:
		return c, fmt.Errorf("%w: retention %q: want %q or %q", ErrBadConfig, c.Retention, Work, Limits)
	}
	if c.MaxMsgs < 0 || c.MaxBytes < 0 || c.MaxAge < 0 {
		return c, fmt.Errorf("%w: max_msgs, max_bytes and max_age may not be negative", ErrBadConfig)
	}
	switch {
	case c.MaxMsgSize == 0:
		c.MaxMsgSize = DefaultMaxMsgSize
	case c.MaxMsgSize < 0 || c.MaxMsgSize > MaxMaxMsgSize:
		return c, fmt.Errorf("%w: max_msg_size %d: 1 to %d bytes", ErrBadConfig, c.MaxMsgSize, MaxMaxMsgSize)
	}
	switch {
	case c.DedupWindow == 0:
		c.DedupWindow = Duration(DefaultDedupWindow)
	case c.DedupWindow < -1:
		return c, fmt.Errorf("%w: dedup_window %v: positive, or -1 for none", ErrBadConfig, time.Duration(c.DedupWindow))
	}
	if c.MaxDeliver < 0 {
		return c, fmt.Errorf("%w: max_deliver %d: 0 (no limit) or more", ErrBadConfig, c.MaxDeliver)
	}
	switch {
	case c.AckWait == 0:
		c.AckWait = Duration(DefaultAckWait)
	case c.AckWait < Duration(time.Millisecond):
		return c, fmt.Errorf("%w: ack_wait %v: at least 1ms", ErrBadConfig, time.Duration(c.AckWait))
	}
	if c.DeadLetter != "" && (!validName(c.DeadLetter) || c.DeadLetter == c.Name) {
		return c, fmt.Errorf("%w: dead_letter %q: another queue's name", ErrBadConfig, c.DeadLetter)
	}
	if _, err := c.syncMode(); err != nil {
		return c, err
	}
	if len(c.Consumers) > maxConsumers {
		return c, fmt.Errorf("%w: %d consumers, at most %d", ErrBadConfig, len(c.Consumers), maxConsumers)
	}
	seen := map[string]bool{}
	cons := make([]ConsumerConfig, len(c.Consumers))
	for i, cc := range c.Consumers {
		cc, err := cc.withDefaults()
		if err != nil {
			return c, err
		}
		if seen[cc.Name] {
			return c, fmt.Errorf("%w: consumer %q listed twice", ErrBadConfig, cc.Name)
		}
		seen[cc.Name] = true
		cons[i] = cc
	}
	c.Consumers = cons
	return c, nil
}

func (c Config) syncMode() (journal.SyncMode, error) {
	switch c.Sync {
	case "", "always":
		return journal.SyncAlways, nil
	case "interval":
		return journal.SyncInterval, nil
	case "never":
		return journal.SyncNever, nil
	}
	return 0, fmt.Errorf("%w: sync %q: want always, interval or never", ErrBadConfig, c.Sync)
}

// withDefaults returns cc with its defaults filled in.
func (cc ConsumerConfig) withDefaults() (ConsumerConfig, error) {
	if !validName(cc.Name) {
		return cc, fmt.Errorf("%w: consumer name %q: 1 to %d letters, digits, '-' or '_'", ErrBadConfig, cc.Name, maxNameLen)
	}
	if cc.DeliverSubject != "" {
		if !subject.ValidPublish([]byte(cc.DeliverSubject)) || strings.HasPrefix(cc.DeliverSubject, "$SB.") {
			return cc, fmt.Errorf("%w: consumer %q: deliver_subject %q is not a literal subject outside $SB.", ErrBadConfig, cc.Name, cc.DeliverSubject)
		}
		if cc.Name == DefaultConsumer {
			return cc, fmt.Errorf("%w: consumer %q is the pull consumer every queue has", ErrBadConfig, cc.Name)
		}
	}
	switch {
	case cc.MaxInFlight == 0:
		cc.MaxInFlight = DefaultMaxInFlight
	case cc.MaxInFlight < 0 || cc.MaxInFlight > maxMaxInFlight:
		return cc, fmt.Errorf("%w: consumer %q: max_in_flight %d: 1 to %d", ErrBadConfig, cc.Name, cc.MaxInFlight, maxMaxInFlight)
	}
	if cc.AckWait != 0 && cc.AckWait < Duration(time.Millisecond) {
		return cc, fmt.Errorf("%w: consumer %q: ack_wait %v: at least 1ms", ErrBadConfig, cc.Name, time.Duration(cc.AckWait))
	}
	return cc, nil
}
