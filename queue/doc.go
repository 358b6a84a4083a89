// Package queue is the hub's durable queues: messages published on a
// queue's subjects are stored in its journal (package journal) and
// acknowledged to the publisher only once durable; consumers fetch them
// (pull) or have them delivered (push), acknowledge each one, and get it
// again when they do not within the ack wait; a message delivered too
// often goes to a dead-letter queue.
//
// The package knows no protocol and no sockets: the hub turns $SB.Q.
// requests into calls on a Manager and its Queues, and gives each queue a
// Sender for what it sends (deliveries, acks, status replies).
// docs/queues.md describes the API and the guarantees, docs/storage.md
// the journal.
//
// # Sequences
//
// A message's sequence is the index of its record in the journal: unique,
// increasing, never reused, but not dense (acks and other bookkeeping
// records take indexes too).
//
// # Concurrency
//
// Manager and Queue methods are safe for concurrent use. Each queue has
// one goroutine (its loop) that hands out messages, runs the timers and
// sends; publish and ack callbacks run on the journal's committer. Lock
// order: Manager.mu, then Queue.mu, then Queue.outMu; nothing waits on a
// journal while holding Queue.mu.
package queue
