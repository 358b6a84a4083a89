package shm

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Frames: the payload codec for messages with a subject, a reply subject
// and NATS headers. A frame fills a slot payload:
//
//	offset       size  field
//	     0          2  subject length (u16, > 0)
//	     2          2  reply subject length (u16, 0: no reply)
//	     4          4  header block length (u32, 0: no headers)
//	     8          4  reserved, zero
//	    12         sl  subject
//	 12+sl         rl  reply subject
//	 12+sl+rl       -  body: the header block ("NATS/1.0\r\n..."), then
//	                   the data; the body runs to the end of the payload
//
// The ring carries the payload length, so the frame does not repeat the
// body's.
const (
	// FrameHeaderSize is the size of the fixed part of a frame.
	FrameHeaderSize = 12
	// MaxFrameSubject is the longest subject or reply subject a frame can
	// carry.
	MaxFrameSubject = math.MaxUint16

	FrameOffSubjectLen = 0 // uint16, subject length
	FrameOffReplyLen   = 2 // uint16, reply subject length
	FrameOffHdrLen     = 4 // uint32, header block length
	FrameOffReserved   = 8 // uint32, zero
)

// Frame is a parsed frame. Subject and Reply are copies; Body is a
// sub-slice of the payload it was parsed from, so it is only as stable as
// that payload (a ring view can change under its reader until Release).
type Frame struct {
	Subject string
	Reply   string // empty: no reply subject
	HdrLen  int    // length of the header block at the start of Body
	Body    []byte // the header block, then the data
}

// Header returns the header block, Body[:HdrLen].
func (f Frame) Header() []byte { return f.Body[:f.HdrLen:f.HdrLen] }

// Data returns the data after the header block, Body[HdrLen:].
func (f Frame) Data() []byte { return f.Body[f.HdrLen:] }

// FrameSize returns the payload size of a frame with subject subj, reply
// subject reply and a body (header block and data) of body bytes.
func FrameSize(subj, reply string, body int) int {
	return FrameHeaderSize + len(subj) + len(reply) + body
}

// checkSubject reports what is wrong with a frame subject (what names it
// in the error), or nil: too long, empty unless allowed, or containing a
// space, tab, CR or LF.
func checkSubject(what, s string, emptyOK bool) error {
	if len(s) > MaxFrameSubject {
		return fmt.Errorf("%w: %s of %d bytes, at most %d", ErrBadFrame, what, len(s), MaxFrameSubject)
	}
	if s == "" && !emptyOK {
		return fmt.Errorf("%w: empty %s", ErrBadFrame, what)
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
			return fmt.Errorf("%w: %s has whitespace at byte %d", ErrBadFrame, what, i)
		}
	}
	return nil
}

func checkFrame(subj, reply string, hdrLen int) error {
	if err := checkSubject("subject", subj, false); err != nil {
		return err
	}
	if err := checkSubject("reply subject", reply, true); err != nil {
		return err
	}
	if hdrLen < 0 || uint64(hdrLen) > math.MaxUint32 {
		return fmt.Errorf("%w: header block of %d bytes", ErrBadFrame, hdrLen)
	}
	return nil
}

// PutFrame writes the fixed part, subject and reply subject of a frame
// into dst and returns the rest of dst, where the caller writes the body:
// hdrLen bytes of header block, then the data. The payload to send is
// FrameSize(subj, reply, len(body written)) bytes. With a loaned slot
// (Writer.Loan(FrameSize(...))) this builds the frame in place. Errors:
// ErrBadFrame for an invalid subject, reply or header length, ErrTooLarge
// if dst cannot hold them.
func PutFrame(dst []byte, subj, reply string, hdrLen int) (body []byte, err error) {
	if err := checkFrame(subj, reply, hdrLen); err != nil {
		return nil, err
	}
	return PutCheckedFrame(dst, subj, reply, hdrLen)
}

// PutCheckedFrame is PutFrame for a caller that has validated subj and
// reply already (non-empty subject, both at most MaxFrameSubject bytes,
// no whitespace) and passes a non-negative hdrLen: a publisher that checks
// its subjects as NATS subjects before it writes saves checking them
// twice. Readers validate every frame they parse whatever the writer
// did, so a wrong subject here corrupts only this ring's frame.
func PutCheckedFrame(dst []byte, subj, reply string, hdrLen int) (body []byte, err error) {
	if need := FrameSize(subj, reply, hdrLen); len(dst) < need {
		return nil, fmt.Errorf("%w: frame needs at least %d bytes, have %d", ErrTooLarge, need, len(dst))
	}
	le := binary.LittleEndian
	le.PutUint16(dst[FrameOffSubjectLen:], uint16(len(subj)))
	le.PutUint16(dst[FrameOffReplyLen:], uint16(len(reply)))
	le.PutUint32(dst[FrameOffHdrLen:], uint32(hdrLen))
	le.PutUint32(dst[FrameOffReserved:], 0)
	n := FrameHeaderSize + copy(dst[FrameHeaderSize:], subj)
	n += copy(dst[n:], reply)
	return dst[n:], nil
}

// ParseFrame parses the frame in payload. Every length is read once and
// checked against the payload before use; the subject and reply subject
// are copied first and validated as copied (non-empty subject, no spaces,
// tabs, CR or LF), so a payload that changes under the parser yields a
// consistent Frame or an error, never a panic. Body is a sub-slice of
// payload. Errors wrap ErrBadFrame.
func ParseFrame(payload []byte) (Frame, error) { return parseFrame(payload, nil) }

// FrameCache holds the subject and reply subject of the last frame parsed
// with ParseFrameCached or Parse, already validated. Read its fields, do
// not set them, and do not copy a FrameCache in use: the fast path of
// Parse trusts them.
type FrameCache struct {
	Subject, Reply string

	// prefix is the fixed part, subject and reply subject of the last
	// frame parsed in full, encoded from the validated values; hdrLen is
	// its header block length.
	prefix []byte
	hdrLen int
}

// ParseFrameCached is ParseFrame, reusing c's strings when the frame
// carries the same subject or reply subject as the last one (a stream to
// one subject then parses without allocating), and remembering new ones.
func ParseFrameCached(payload []byte, c *FrameCache) (Frame, error) {
	var f Frame
	err := c.Parse(payload, &f)
	return f, err
}

// Parse is ParseFrameCached into *f, which it sets only on success. A
// frame that begins with the same bytes as the last one c parsed (fixed
// part, subject and reply subject: a stream from one publisher to one
// subject) is parsed with one comparison of those bytes, against a copy
// of what was validated, so a payload that changes meanwhile yields that
// frame or the full parse, never a mix.
func (c *FrameCache) Parse(payload []byte, f *Frame) error {
	if n := len(c.prefix); n > 0 && len(payload) >= n && string(payload[:n]) == string(c.prefix) {
		body := payload[n:]
		if c.hdrLen > len(body) {
			return fmt.Errorf("%w: header block of %d bytes in a %d-byte body", ErrBadFrame, c.hdrLen, len(body))
		}
		*f = Frame{Subject: c.Subject, Reply: c.Reply, HdrLen: c.hdrLen, Body: body}
		return nil
	}
	// parseFrame remembers a new subject before it checks the reply:
	// let it touch a copy, so that a frame it rejects leaves c as it was
	// (else the fast path would pair the last prefix with its subject).
	tmp := FrameCache{Subject: c.Subject, Reply: c.Reply}
	fr, err := parseFrame(payload, &tmp)
	if err != nil {
		return err
	}
	c.Subject, c.Reply = tmp.Subject, tmp.Reply
	le := binary.LittleEndian
	p := le.AppendUint16(c.prefix[:0], uint16(len(fr.Subject)))
	p = le.AppendUint16(p, uint16(len(fr.Reply)))
	p = le.AppendUint32(p, uint32(fr.HdrLen))
	p = le.AppendUint32(p, 0)
	p = append(p, fr.Subject...)
	c.prefix = append(p, fr.Reply...)
	c.hdrLen = fr.HdrLen
	*f = fr
	return nil
}

// Body is the fast path of Parse alone: if payload begins with the same
// bytes as the last frame c parsed and that frame had no header block, it
// returns the body, and the frame's subject and reply subject are
// c.Subject and c.Reply. Otherwise it returns false and the caller
// parses (Parse).
func (c *FrameCache) Body(payload []byte) ([]byte, bool) {
	if n := len(c.prefix); n > 0 && c.hdrLen == 0 && len(payload) >= n && string(payload[:n]) == string(c.prefix) {
		return payload[n:], true
	}
	return nil, false
}

func parseFrame(payload []byte, c *FrameCache) (Frame, error) {
	if len(payload) < FrameHeaderSize {
		return Frame{}, fmt.Errorf("%w: %d bytes, shorter than the frame header", ErrBadFrame, len(payload))
	}
	le := binary.LittleEndian
	sl := int(le.Uint16(payload[FrameOffSubjectLen:]))
	rl := int(le.Uint16(payload[FrameOffReplyLen:]))
	hl := uint64(le.Uint32(payload[FrameOffHdrLen:]))
	if res := le.Uint32(payload[FrameOffReserved:]); res != 0 {
		return Frame{}, fmt.Errorf("%w: reserved field %#x", ErrBadFrame, res)
	}
	end := FrameHeaderSize + sl + rl // at most 12 + 2*65535: no overflow
	if end > len(payload) {
		return Frame{}, fmt.Errorf("%w: subject %d and reply %d bytes in a %d-byte payload", ErrBadFrame, sl, rl, len(payload))
	}
	body := payload[end:]
	if hl > uint64(len(body)) {
		return Frame{}, fmt.Errorf("%w: header block of %d bytes in a %d-byte body", ErrBadFrame, hl, len(body))
	}
	f := Frame{HdrLen: int(hl), Body: body}
	sb, rb := payload[FrameHeaderSize:FrameHeaderSize+sl], payload[FrameHeaderSize+sl:end]
	// The comparisons read the bytes once and do not allocate; a cached
	// string was validated when it was cached.
	if c != nil && sl > 0 && string(sb) == c.Subject {
		f.Subject = c.Subject
	} else {
		f.Subject = string(sb)
		if err := checkSubject("subject", f.Subject, false); err != nil {
			return Frame{}, err
		}
		if c != nil {
			c.Subject = f.Subject
		}
	}
	if c != nil && string(rb) == c.Reply {
		f.Reply = c.Reply
	} else {
		f.Reply = string(rb)
		if err := checkSubject("reply subject", f.Reply, true); err != nil {
			return Frame{}, err
		}
		if c != nil {
			c.Reply = f.Reply
		}
	}
	return f, nil
}

// PublishFrame publishes a frame with subject subj, reply subject reply
// (empty for none), header block hdr and data: Loan, PutFrame, copy, Send.
// Nothing is loaned if the frame is invalid (ErrBadFrame) or does not fit a
// slot (ErrTooLarge).
func (w *Writer) PublishFrame(subj, reply string, hdr, data []byte) error {
	if err := checkFrame(subj, reply, len(hdr)); err != nil {
		return err
	}
	n := FrameSize(subj, reply, len(hdr)+len(data))
	buf, err := w.Loan(n)
	if err != nil {
		return err
	}
	body, err := PutFrame(buf, subj, reply, len(hdr))
	if err != nil {
		return err // cannot happen: checked above, and buf holds n bytes
	}
	copy(body[copy(body, hdr):], data)
	return w.Send(n)
}
