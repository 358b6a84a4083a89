package auth

import "strings"

// The TOML decoder reports positions only in parse errors, so the lines of
// rules and keys are recovered from the source text: the n-th [[rule]]
// header is rule n, and within its span the first line where a key starts
// is that key's line. The scan skips comments and the insides of strings,
// multi-line ones included. A policy written with inline tables
// (rule = [{...}]) has no headers; its lines stay 0.

// srcMap is what the scan found.
type srcMap struct {
	top    map[string]int       // top-level key → line
	tables map[string]int       // [table] header → line
	arrays map[string][]section // [[array]] name → one section per header
}

// section is one [[array]] element: its header line and its keys' lines.
type section struct {
	line int
	keys map[string]int
}

// scanLines maps the text of a TOML document.
func scanLines(src string) *srcMap {
	m := &srcMap{top: map[string]int{}, tables: map[string]int{}, arrays: map[string][]section{}}
	cur := m.top       // keys of the current section
	var inMulti string // the closing delimiter of an open multi-line string
	for n, line := range strings.Split(src, "\n") {
		lineNo := n + 1
		if inMulti != "" {
			i := closeMulti(line, inMulti)
			if i < 0 {
				continue
			}
			inMulti = openMulti(line[i:])
			continue
		}
		t := strings.TrimLeft(line, " \t")
		switch {
		case strings.HasPrefix(t, "[["):
			if name, ok := headerName(t[2:], "]]"); ok {
				s := section{line: lineNo, keys: map[string]int{}}
				m.arrays[name] = append(m.arrays[name], s)
				cur = s.keys
			} else {
				cur = nil
			}
		case strings.HasPrefix(t, "["):
			if name, ok := headerName(t[1:], "]"); ok {
				if _, dup := m.tables[name]; !dup {
					m.tables[name] = lineNo
				}
			}
			cur = nil
		default:
			if k, ok := keyName(t); ok && cur != nil {
				if _, seen := cur[k]; !seen {
					cur[k] = lineNo
				}
			}
		}
		inMulti = openMulti(line)
	}
	return m
}

// elem returns the header line of the i-th (0-based) element of the array
// named name and the line of key in it (0 if absent), or 0, 0 when the
// headers found do not correspond one to one with want elements.
func (m *srcMap) elem(name string, i, want int, key string) (line, keyLine int) {
	if m == nil {
		return 0, 0
	}
	secs := m.arrays[name]
	if len(secs) != want || i < 0 || i >= len(secs) {
		return 0, 0
	}
	return secs[i].line, secs[i].keys[key]
}

// headerName parses the name of a table header after its opening brackets,
// up to the closing ones: "rule]]" or ` "rule" ]] # comment`. Dotted names
// are returned with their dots; quoted parts are unquoted.
func headerName(s, closing string) (string, bool) {
	var parts []string
	for {
		s = strings.TrimLeft(s, " \t")
		k, rest, ok := keyPart(s)
		if !ok {
			return "", false
		}
		parts = append(parts, k)
		s = strings.TrimLeft(rest, " \t")
		if strings.HasPrefix(s, ".") {
			s = s[1:]
			continue
		}
		if !strings.HasPrefix(s, closing) {
			return "", false
		}
		return strings.Join(parts, "."), true
	}
}

// keyName returns the first part of the key of a `key = value` line.
func keyName(s string) (string, bool) {
	k, rest, ok := keyPart(s)
	if !ok {
		return "", false
	}
	rest = strings.TrimLeft(rest, " \t")
	if rest == "" || (rest[0] != '=' && rest[0] != '.') {
		return "", false
	}
	return k, true
}

// keyPart reads one bare or quoted key at the start of s.
func keyPart(s string) (key, rest string, ok bool) {
	if s == "" {
		return "", "", false
	}
	switch s[0] {
	case '"', '\'':
		end := strings.IndexByte(s[1:], s[0])
		if end < 0 {
			return "", "", false
		}
		return s[1 : 1+end], s[2+end:], true
	}
	i := 0
	for i < len(s) && isBare(s[i]) {
		i++
	}
	if i == 0 {
		return "", "", false
	}
	return s[:i], s[i:], true
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// openMulti scans a line outside any string and returns the delimiter of a
// multi-line string it opens and does not close, or "".
func openMulti(line string) string {
	for i := 0; i < len(line); i++ {
		switch c := line[i]; c {
		case '#':
			return ""
		case '"', '\'':
			delim := string([]byte{c, c, c})
			if strings.HasPrefix(line[i:], delim) {
				j := closeMulti(line[i+3:], delim)
				if j < 0 {
					return delim
				}
				i += 3 + j - 1
				continue
			}
			// A single-line string: skip to its end.
			j := i + 1
			for j < len(line) && line[j] != c {
				if c == '"' && line[j] == '\\' {
					j++
				}
				j++
			}
			i = j
		}
	}
	return ""
}

// closeMulti returns the index just past the delimiter that closes a
// multi-line string in s, or -1. Up to two extra quotes right before the
// closing delimiter belong to the string, as TOML allows.
func closeMulti(s, delim string) int {
	for i := 0; i < len(s); i++ {
		if delim[0] == '"' && s[i] == '\\' {
			i++
			continue
		}
		if strings.HasPrefix(s[i:], delim) {
			j := i + 3
			for k := 0; k < 2 && j < len(s) && s[j] == delim[0]; k++ {
				j++
			}
			return j
		}
	}
	return -1
}
