package switchboard

import (
	"strconv"
	"unsafe"

	"switchboard/internal/protocol"
)

// Msg is a message received from, or to be published to, the hub.
//
// A received Msg belongs to the receiver: its fields, including Data, are
// not reused or modified by the Conn afterwards.
type Msg struct {
	// Subject the message was published to.
	Subject string
	// Reply is the subject to respond to ("" when none).
	Reply string
	// Header is nil when the message has no header fields.
	Header Header
	// Data is the payload (not including the header).
	Data []byte
	// Sub is the subscription that received the message (nil for a
	// message built by the caller).
	Sub *Subscription

	status int // status code of a received header's status line (503 for no responders), else 0
	size   int // header + body bytes, counted against pending byte limits
}

// Respond publishes data to m.Reply over the connection m was received on.
// It returns ErrNoReply if m has no reply subject and ErrNotBound if m was
// not received from a Conn. Respond writes inline (see the package doc).
func (m *Msg) Respond(data []byte) error {
	c, err := m.respondConn()
	if err != nil {
		return err
	}
	return c.publish(nil, m.Reply, "", nil, data, true)
}

// RespondMsg publishes resp (its Header, Data and Reply; its Subject is
// ignored) to m.Reply over the connection m was received on.
func (m *Msg) RespondMsg(resp *Msg) error {
	c, err := m.respondConn()
	if err != nil {
		return err
	}
	return c.publish(nil, m.Reply, resp.Reply, resp.Header, resp.Data, true)
}

func (m *Msg) respondConn() (*Conn, error) {
	if m.Sub == nil || m.Sub.conn == nil {
		return nil, ErrNotBound
	}
	if m.Reply == "" {
		return nil, ErrNoReply
	}
	return m.Sub.conn, nil
}

// newMsg copies a MSG or HMSG frame into a Msg. Subject, reply and body
// share one allocation; Subject and Reply are strings over it and Data is a
// capacity-limited slice of it, so appending to Data never touches the
// rest. ParseHeader copies the header block itself. A malformed header
// block still yields the message (without Header) and the error.
func newMsg(f *protocol.Frame, sub *Subscription) (*Msg, error) {
	hl := f.HeaderLen
	body := f.Payload[hl:]
	ls, lr := len(f.Subject), len(f.Reply)
	n := ls + lr + len(body)
	buf := make([]byte, n)
	copy(buf, f.Subject)
	copy(buf[ls:], f.Reply)
	copy(buf[ls+lr:], body)
	m := &Msg{Sub: sub, size: len(f.Payload)}
	if ls > 0 {
		m.Subject = unsafe.String(&buf[0], ls)
	}
	if lr > 0 {
		m.Reply = unsafe.String(&buf[ls], lr)
	}
	m.Data = buf[ls+lr : n : n]
	if hl > 0 {
		return m, m.parseHeader(f.Payload[:hl])
	}
	return m, nil
}

// parseHeader sets m's header fields and status from a header block.
func (m *Msg) parseHeader(block []byte) error {
	h, err := protocol.ParseHeader(block)
	if err != nil {
		return err
	}
	m.status = h.Status
	if len(h.Fields) > 0 {
		m.Header = Header(h.Fields)
	}
	if h.Status != 0 {
		if m.Header == nil {
			m.Header = make(Header, 2)
		}
		m.Header[StatusHeader] = []string{strconv.Itoa(h.Status)}
		if h.Description != "" {
			m.Header[DescriptionHeader] = []string{h.Description}
		}
	}
	return nil
}
