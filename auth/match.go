package auth

import "strings"

// A pattern is a valid subscription subject split into tokens. Only a whole
// token "*" or ">" is a wildcard; "a*" is a literal.
type pattern struct {
	s    string
	toks []string
}

func newPattern(s string) pattern { return pattern{s, strings.Split(s, ".")} }

// reserved is the first token of the subjects only the hub's own patterns
// grant publishing to.
const reserved = "$SB"

// matchLit reports whether the valid literal subject lit matches the
// pattern tokens p. It walks lit once without allocating.
func matchLit(p []string, lit string) bool {
	for i, pt := range p {
		if pt == ">" {
			return true // last, and lit has at least one token left
		}
		var tok string
		j := strings.IndexByte(lit, '.')
		if j < 0 {
			tok, lit = lit, ""
		} else {
			tok, lit = lit[:j], lit[j+1:]
		}
		if pt != "*" && pt != tok {
			return false
		}
		if j < 0 {
			return i == len(p)-1
		}
	}
	return false // lit has tokens left over
}

// firstToken returns the subject's first token.
func firstToken(s string) string {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i]
	}
	return s
}

// covers reports whether every literal subject that s matches also matches
// a, for valid patterns a and s.
func covers(a, s []string) bool {
	for i, at := range a {
		if i >= len(s) {
			return false // s matches subjects too short for a
		}
		st := s[i]
		switch {
		case at == ">":
			return true // s has at least one token here, so a's '>' takes the rest
		case st == ">":
			return false // s matches subjects longer than a allows here
		case at == "*":
		case st == "*" || st != at:
			return false // s matches a token other than a's literal here
		}
	}
	return len(s) == len(a)
}

// overlaps reports whether some literal subject matches both d and s, for
// valid patterns d and s.
func overlaps(d, s []string) bool {
	n := min(len(d), len(s))
	for i := range n {
		dt, st := d[i], s[i]
		switch {
		case dt == ">" || st == ">":
			return true // the other has a token here: the rest can agree
		case dt == "*" || st == "*" || dt == st:
		default:
			return false
		}
	}
	return len(d) == len(s)
}
