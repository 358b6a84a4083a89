package switchboard

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
