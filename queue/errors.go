package queue

import "errors"

// Errors the queue layer returns; the hub sends their text to clients in
// the "error" field of $SB.Q. replies (docs/queues.md).
var (
	ErrBadConfig       = errors.New("queue: invalid configuration")
	ErrNotFound        = errors.New("queue: no such queue")
	ErrExists          = errors.New("queue: already exists")
	ErrNoConsumer      = errors.New("queue: no such consumer")
	ErrSubjectOverlap  = errors.New("queue: subjects overlap another queue's")
	ErrTooLarge        = errors.New("queue: message larger than the queue's max_msg_size")
	ErrFull            = errors.New("queue: full")
	ErrFailed          = errors.New("queue: storage failed; the queue is read-only until the hub restarts")
	ErrClosed          = errors.New("queue: closed")
	ErrStaleDelivery   = errors.New("queue: not the current delivery of that message")
	ErrBadRecord       = errors.New("queue: malformed record")
	ErrPushConsumer    = errors.New("queue: a push consumer cannot be fetched from")
	ErrBadRequest      = errors.New("queue: bad request")
	ErrImmutableConfig = errors.New("queue: that setting cannot change")
)
