package protocol

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
)

// Header block constants.
const (
	// HeaderVersion starts every header block.
	HeaderVersion = "NATS/1.0"
	// StatusNoResponders is the status of the message a requester gets
	// when no one is subscribed to the request subject.
	StatusNoResponders = 503
	// NoRespondersHeader is the complete header block of that message.
	NoRespondersHeader = "NATS/1.0 503\r\n\r\n"
)

// Header is a NATS message header block: an optional status line and
// MIME-style fields.
//
// Keys are case-sensitive and kept exactly as sent: ParseHeader does not
// canonicalize them the way net/textproto would, so "nats-msg-id" and
// "Nats-Msg-Id" are different keys. (nats.go's Header is case-sensitive
// too; clients that canonicalize do so on their side.)
type Header struct {
	Status      int    // 0 when the block has no status (e.g. 503 for no responders)
	Description string // text after the status code, may be empty
	Fields      map[string][]string
}

// Get returns the first value of key (exact case), or "" when there is none.
func (h *Header) Get(key string) string {
	if v := h.Fields[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Add appends value to the values of key (exact case), creating Fields if
// needed.
func (h *Header) Add(key, value string) {
	if h.Fields == nil {
		h.Fields = make(map[string][]string)
	}
	h.Fields[key] = append(h.Fields[key], value)
}

// AppendHeader encodes h as "NATS/1.0[ status[ desc]]\r\nK: V\r\n...\r\n".
//
// The status line is written when Status is non-zero (it should be 100 to
// 999); Description only with a status. Keys are written in sorted order,
// one line per value, so the output is deterministic; keys must not
// contain ':' and empty keys are skipped. CR and LF in keys, values and
// the description are replaced by spaces so that the block stays well
// formed. A nil h encodes as an empty block, "NATS/1.0\r\n\r\n".
func AppendHeader(b []byte, h *Header) []byte {
	b = append(b, HeaderVersion...)
	if h == nil {
		return append(b, "\r\n\r\n"...)
	}
	if h.Status != 0 {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(h.Status), 10)
		if h.Description != "" {
			b = append(b, ' ')
			b = appendLine(b, h.Description)
		}
	}
	b = append(b, "\r\n"...)
	var arr [16]string
	keys := arr[:0]
	for k := range h.Fields {
		if k != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h.Fields[k] {
			b = appendLine(b, k)
			b = append(b, ": "...)
			b = appendLine(b, v)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// ParseHeader decodes a header block produced by AppendHeader or any NATS client.
//
// b must be exactly the block (Frame.Payload[:Frame.HeaderLen]): a
// "NATS/1.0" line with an optional three-digit status (100-999) and
// description, then "Key: Value" lines, then an empty line, every line
// ended by CRLF. Keys keep their case; leading spaces and tabs of a value
// are dropped; a key may repeat. Malformed input gives an *Error matching
// ErrInvalidHeader whose Detail says what is wrong. The returned Fields is
// never nil.
func ParseHeader(b []byte) (*Header, error) {
	if !bytes.HasPrefix(b, []byte(HeaderVersion)) {
		return nil, headerError("missing %s prefix: %s", HeaderVersion, snippet(b))
	}
	s := string(b) // one copy; keys and values are substrings of it
	h := &Header{Fields: make(map[string][]string)}
	line, rest, err := headerLine(s)
	if err != nil {
		return nil, err
	}
	if err := h.parseStatus(line[len(HeaderVersion):]); err != nil {
		return nil, err
	}
	for {
		line, rest, err = headerLine(rest)
		if err != nil {
			return nil, err
		}
		if line == "" {
			break
		}
		i := strings.IndexByte(line, ':')
		if i < 0 {
			return nil, headerError("field line without ':': %s", snippet(line))
		}
		if i == 0 {
			return nil, headerError("field line with an empty key: %s", snippet(line))
		}
		key := line[:i]
		v := i + 1
		for v < len(line) && (line[v] == ' ' || line[v] == '\t') {
			v++
		}
		h.Fields[key] = append(h.Fields[key], line[v:])
	}
	if rest != "" {
		return nil, headerError("%d bytes after the empty line that ends the block", len(rest))
	}
	return h, nil
}

// parseStatus parses what follows "NATS/1.0" on the first line.
func (h *Header) parseStatus(s string) error {
	if s == "" {
		return nil
	}
	if s[0] != ' ' && s[0] != '\t' {
		return headerError("%s followed by %s", HeaderVersion, snippet(s))
	}
	s = trimSpaceString(s)
	if s == "" {
		return nil
	}
	if len(s) < 3 || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[2]) || s[0] == '0' ||
		(len(s) > 3 && s[3] != ' ' && s[3] != '\t') {
		return headerError("status %s is not a three-digit code from 100 to 999", snippet(s))
	}
	h.Status = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	h.Description = trimSpaceString(s[3:])
	return nil
}

// headerLine splits s after its first CRLF, rejecting a missing CRLF and
// stray CR or LF inside the line.
func headerLine(s string) (line, rest string, err error) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return "", "", headerError("block does not end with an empty CRLF line")
	}
	if i == 0 || s[i-1] != '\r' {
		return "", "", headerError("line ends with LF instead of CRLF: %s", snippet(s[:i]))
	}
	line = s[:i-1]
	if strings.IndexByte(line, '\r') >= 0 {
		return "", "", headerError("CR inside a line: %s", snippet(line))
	}
	return line, s[i+1:], nil
}

// headerError returns an *Error matching ErrInvalidHeader.
func headerError(format string, args ...any) error {
	return newError(ErrInvalidHeader, format, args...)
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// trimSpaceString drops leading and trailing spaces and tabs.
func trimSpaceString(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}
