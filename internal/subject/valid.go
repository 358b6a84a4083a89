package subject

import "strings"

// MaxSubjectLen is the longest subject, in bytes, that the validators accept.
// It matches the default NATS control-line limit (4096 bytes), which already
// bounds subjects that arrive over the protocol; the cap also bounds subjects
// from other sources (HTTP, configuration) and the memory of the match cache.
// Queue group names share the same limit.
const MaxSubjectLen = 4096

const (
	sep = '.' // token separator
	pwc = '*' // partial wildcard: exactly one token
	fwc = '>' // full wildcard: one or more trailing tokens
)

// isSpace reports whether c is a byte that may not appear in a subject or a
// queue name: the ASCII whitespace nats-server rejects.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '\f':
		return true
	}
	return false
}

// ValidPublish reports whether s is a valid literal subject (no wildcards).
//
// s must be non-empty, at most [MaxSubjectLen] bytes, made of non-empty
// '.'-separated tokens, and free of whitespace; no token may be exactly "*"
// or ">". A token that merely contains '*' or '>' ("a*b") is a literal.
func ValidPublish(s []byte) bool { return valid(s, false) }

// ValidSubscribe reports whether s is a valid subscription subject (wildcards allowed).
//
// The rules are those of [ValidPublish], except that a token may be "*"
// (matching any one token) or, as the last token only, ">" (matching one or
// more tokens).
func ValidSubscribe(s []byte) bool { return valid(s, true) }

// ValidQueue reports whether s is a valid queue group name.
//
// A queue name is non-empty, at most [MaxSubjectLen] bytes and free of
// whitespace; unlike a subject it may contain any other byte, including '.',
// '*' and '>', which carry no meaning in a queue name.
func ValidQueue(s []byte) bool { return validQueue(s) }

// valid checks a subject in one pass. It is generic so that the string-typed
// Sublist methods can validate without converting to []byte.
func valid[S ~string | ~[]byte](s S, wildcards bool) bool {
	n := len(s)
	if n == 0 || n > MaxSubjectLen {
		return false
	}
	start := 0 // first byte of the current token
	for i := 0; i < n; i++ {
		c := s[i]
		if c == sep {
			if i == start || !validToken(s[start], i-start, wildcards, false) {
				return false
			}
			start = i + 1
			continue
		}
		if isSpace(c) {
			return false
		}
	}
	// The last token: non-empty (so "a." is invalid) and may be '>'.
	return start < n && validToken(s[start], n-start, wildcards, true)
}

// validToken checks the wildcard rules for a non-empty token whose first byte
// is first and whose length is n.
func validToken(first byte, n int, wildcards, last bool) bool {
	if n != 1 {
		return true
	}
	switch first {
	case pwc:
		return wildcards
	case fwc:
		return wildcards && last
	}
	return true
}

func validQueue[S ~string | ~[]byte](s S) bool {
	n := len(s)
	if n == 0 || n > MaxSubjectLen {
		return false
	}
	for i := 0; i < n; i++ {
		if isSpace(s[i]) {
			return false
		}
	}
	return true
}

// isLiteral reports whether the valid subscription subject s has no wildcard
// token.
func isLiteral(s string) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == sep {
			if i-start == 1 && (s[start] == pwc || s[start] == fwc) {
				return false
			}
			start = i + 1
		}
	}
	return true
}

// matchTokens reports whether the valid literal subject lit matches the
// valid subscription subject whose tokens are ftoks. It walks lit once,
// comparing literal tokens with a prefix check, without allocating; the trie
// does the same job for many filters at once, and this is used to find which
// cached results a new or removed subscription affects.
func matchTokens(ftoks []string, lit string) bool {
	last := len(ftoks) - 1
	for i, ft := range ftoks {
		// Here lit is non-empty: it is valid, and only a '.' brought us on.
		var rest string
		var more bool
		switch ft {
		case ">":
			return true // '>' is last and takes the one or more tokens left
		case "*":
			j := strings.IndexByte(lit, sep)
			if j < 0 {
				return i == last
			}
			rest, more = lit[j+1:], true
		default:
			if !strings.HasPrefix(lit, ft) {
				return false
			}
			if len(lit) == len(ft) {
				return i == last
			}
			if lit[len(ft)] != sep {
				return false
			}
			rest, more = lit[len(ft)+1:], true
		}
		if i == last {
			return !more
		}
		lit = rest
	}
	return false // unreachable for a non-empty filter
}

// cut splits s at its first '.': the token before, the rest after, and
// whether there was a '.'.
func cut(s string) (tok, rest string, more bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Match reports whether the literal subject lit matches the subscription
// pattern pat. Both must be valid (ValidPublish, ValidSubscribe).
func Match(pat, lit string) bool {
	if pat == lit {
		return true
	}
	return matchTokens(strings.Split(pat, string(sep)), lit)
}

// Overlap reports whether some literal subject matches both valid
// subscription patterns a and b.
func Overlap(a, b string) bool {
	at, bt := strings.Split(a, string(sep)), strings.Split(b, string(sep))
	for i := range min(len(at), len(bt)) {
		x, y := at[i], bt[i]
		switch {
		case x == ">" || y == ">":
			return true
		case x == "*" || y == "*" || x == y:
		default:
			return false
		}
	}
	return len(at) == len(bt)
}

// Literal reports whether the valid subscription pattern s has no
// wildcard token.
func Literal(s string) bool { return isLiteral(s) }
