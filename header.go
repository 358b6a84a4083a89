package switchboard

import (
	"fmt"
	"strings"
)

// Header holds a message's header fields. Keys are case-sensitive and kept
// exactly as given, like nats.go's Header (and unlike net/http's): "Trace-Id"
// and "trace-id" are two different keys. A nil Header is valid for reading.
//
// A message received with a status line (for example the hub's 503 "no
// responders" reply) carries the status code under the key "Status" and its
// description, if any, under "Description", as nats.go does.
type Header map[string][]string

// Status header keys set on received messages that carry a status line.
const (
	StatusHeader      = "Status"
	DescriptionHeader = "Description"
)

// Get returns the first value for key, or "" if there is none.
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns all values for key. The slice is the Header's own.
func (h Header) Values(key string) []string { return h[key] }

// Set replaces the values for key with value.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// Add appends value to the values for key.
func (h Header) Add(key, value string) { h[key] = append(h[key], value) }

// Del removes key.
func (h Header) Del(key string) { delete(h, key) }

// validHeader rejects header keys that would not survive the wire: empty,
// or containing ':', whitespace or control characters; and values with CR
// or LF, which would end the line early.
func validHeader(h Header) error {
	for k, vs := range h {
		if k == "" {
			return fmt.Errorf("header key is empty: %w", ErrBadArgument)
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; c == ':' || c <= ' ' || c == 0x7f {
				return fmt.Errorf("header key %q: %q not allowed: %w", k, c, ErrBadArgument)
			}
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				return fmt.Errorf("header %q: value contains CR or LF: %w", k, ErrBadArgument)
			}
		}
	}
	return nil
}
