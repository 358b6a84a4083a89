package switchboard

// maxSubjectLen matches the hub's subject length limit (the default
// control-line limit). publish also checks the whole protocol line against
// maxControlLine, so an oversized subject fails here, not on the wire.
const maxSubjectLen = 4096

// maxControlLine is the hub's default control-line limit, CRLF included.
const maxControlLine = 4096

// maxInboundControlLine is what the client accepts from the hub: a MSG
// line repeats the subject and reply of a PUB line that fit the hub's
// limit and adds the sid, so it can be longer.
const maxInboundControlLine = 2*maxControlLine + 128

// validSubject reports whether s is a valid subject in one pass: non-empty,
// at most maxSubjectLen bytes, no whitespace, no empty token; a token that
// is exactly "*" or ">" is allowed only when wildcards is set, and ">" only
// as the last token.
func validSubject(s string, wildcards bool) bool {
	n := len(s)
	if n == 0 || n > maxSubjectLen {
		return false
	}
	start := 0
	for i := 0; i <= n; i++ {
		if i < n {
			switch s[i] {
			case ' ', '\t', '\r', '\n', '\f':
				return false
			case '.':
			default:
				continue
			}
		}
		// s[start:i] is a complete token.
		if i == start {
			return false
		}
		if i-start == 1 {
			switch s[start] {
			case '*':
				if !wildcards {
					return false
				}
			case '>':
				if !wildcards || i != n {
					return false
				}
			}
		}
		start = i + 1
	}
	return true
}

// validQueue reports whether q is a valid queue group name: non-empty, at
// most maxSubjectLen bytes, no whitespace.
func validQueue(q string) bool {
	if len(q) == 0 || len(q) > maxSubjectLen {
		return false
	}
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ' ', '\t', '\r', '\n', '\f':
			return false
		}
	}
	return true
}
