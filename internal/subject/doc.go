// Package subject validates NATS subjects and matches them against
// subscriptions with '*' and '>' wildcards.
//
// # Subjects
//
// A subject is one or more non-empty tokens separated by '.', such as
// "orders.eu.created". It may not contain ASCII whitespace (space, tab, CR,
// LF or form feed) and may be at most [MaxSubjectLen] bytes long. Any other
// byte is allowed, including non-ASCII UTF-8 (and, as in NATS, bytes that are
// not valid UTF-8); subjects are compared byte for byte.
//
// A subscription subject may use two wildcards, each only as a whole token:
//
//   - '*' matches exactly one token: "orders.*" matches "orders.eu" but not
//     "orders" or "orders.eu.created".
//   - '>' matches one or more tokens and must be the last token: "orders.>"
//     matches "orders.eu" and "orders.eu.created" but not "orders".
//
// A '*' or '>' inside a longer token ("a*b", "x>") is an ordinary literal
// character, as in nats-server: "a*b" is a valid publish subject and only
// matches itself.
//
// # Matching
//
// A [Sublist] holds subscriptions (a subject, an optional queue group and a
// value) and answers, for a literal subject, which of them match. It is a
// trie of tokens, like nats-server's sublist, with a bounded cache of results
// keyed by the literal subject, so that publishing repeatedly to the same
// subject costs a hash and a few atomic loads.
//
// # Concurrency
//
// All methods of [Sublist] are safe for concurrent use. [Sublist.Match] never
// blocks on a cache hit; on a miss it walks the trie under a read lock, so
// many Match calls run in parallel and only Insert and Remove exclude each
// other and uncached Matches. A [Result] is immutable once returned: later
// Inserts and Removes build new Results instead of changing old ones, so a
// caller may keep and read a Result without locking, and it reflects the
// subscriptions at the moment of the Match.
package subject
