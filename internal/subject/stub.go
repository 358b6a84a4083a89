// Package subject validates NATS subjects and matches them against
// subscriptions with '*' and '>' wildcards.
package subject

// STUB: replaced by the real implementation (valid.go, sublist.go).

// ValidPublish reports whether s is a valid literal subject (no wildcards).
func ValidPublish(s []byte) bool { panic("stub") }

// ValidSubscribe reports whether s is a valid subscription subject (wildcards allowed).
func ValidSubscribe(s []byte) bool { panic("stub") }

// ValidQueue reports whether s is a valid queue group name.
func ValidQueue(s []byte) bool { panic("stub") }

// Sublist maps subscription subjects to values of T. Safe for concurrent use.
type Sublist[T comparable] struct{}

// NewSublist returns an empty Sublist.
func NewSublist[T comparable]() *Sublist[T] { panic("stub") }

// Result is what a literal subject matches. It is shared and must not be modified.
type Result[T comparable] struct {
	Plain  []T   // subscribers without a queue group
	Groups [][]T // one slice per queue group; a message goes to one member of each
}

// Insert adds v under subject (wildcards allowed) and queue ("" = none).
func (s *Sublist[T]) Insert(subj, queue string, v T) error { panic("stub") }

// Remove deletes v from subject/queue; it reports whether v was there.
func (s *Sublist[T]) Remove(subj, queue string, v T) bool { panic("stub") }

// Match returns the subscriptions matching the literal subject.
func (s *Sublist[T]) Match(subj []byte) *Result[T] { panic("stub") }

// Count returns the number of subscriptions.
func (s *Sublist[T]) Count() int { panic("stub") }
