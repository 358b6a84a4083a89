package protocol

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// Default and maximum limits. A Limits field that is zero or negative takes
// the default; larger values are clamped to the maximum so that a frame's
// total length always fits in an int.
const (
	DefaultMaxControlLine = 4096    // Limits.MaxControlLine default, CRLF included
	DefaultMaxPayload     = 1 << 20 // Limits.MaxPayload default (1 MiB)
	MaxControlLineLimit   = 1 << 20 // largest accepted Limits.MaxControlLine
	MaxPayloadLimit       = 1 << 30 // largest accepted Limits.MaxPayload
)

const (
	// minPending is the smallest buffer the parser allocates for a frame
	// that straddles Parse calls (never more than the frame needs).
	minPending = 512
	// maxRetained is the largest pending buffer Shrink keeps. Larger ones
	// are kept between frames while a stream flows (so large messages do
	// not reallocate per frame) and released by Shrink when the caller
	// sees the stream pause, so an idle connection does not pin a
	// payload-sized buffer.
	maxRetained = 4096
	// maxSizeDigits bounds size fields: 18 decimal digits cannot overflow
	// an int64, so parsing needs no overflow checks.
	maxSizeDigits = 18
	// maxArgs is one more than the most arguments any op takes (HMSG: 5),
	// so that one extra argument is detected.
	maxArgs = 6
	// maxOpLen is the longest operation name (CONNECT).
	maxOpLen = 7
	// noLimit disables the payload check when a frame whose control line
	// was already accepted is decoded again from the pending buffer.
	noLimit = int(^uint(0) >> 1)
)

// Parser is a resumable state machine over one direction of a connection:
// feed it bytes as they arrive with Parse and it calls back once per
// complete frame. Frames may be split across Parse calls at any byte.
//
// A Parser is not safe for concurrent use; one goroutine (the connection's
// reader) owns it. See the package documentation for memory bounds.
type Parser struct {
	side       Side
	allow      uint16 // bit 1<<Op for every op this side accepts
	mcl        int    // max control line, CRLF included
	maxPayload int

	frame Frame // handed to the callback; reused so no frame allocates

	// pend holds the bytes of a frame that straddles Parse calls: its
	// control line, then as much of its payload as has arrived. It is
	// empty whenever Parse returns at a frame boundary.
	pend []byte
	// need is the total length of the pending frame once its control line
	// has been parsed; 0 while the control line is still incomplete.
	need int
	err  error // sticky: set by the first protocol or callback error
}

// Bit masks of the operations each side accepts.
const (
	serverOps = 1<<OpConnect | 1<<OpPub | 1<<OpHPub | 1<<OpSub | 1<<OpUnsub | 1<<OpPing | 1<<OpPong
	clientOps = 1<<OpInfo | 1<<OpMsg | 1<<OpHMsg | 1<<OpPing | 1<<OpPong | 1<<OpOK | 1<<OpErr
)

// opNames lists every operation name in upper case, for the prefix check on
// incomplete control lines.
var opNames = [...]struct {
	name string
	op   Op
}{
	{"CONNECT", OpConnect}, {"PUB", OpPub}, {"HPUB", OpHPub}, {"SUB", OpSub},
	{"UNSUB", OpUnsub}, {"PING", OpPing}, {"PONG", OpPong}, {"INFO", OpInfo},
	{"MSG", OpMsg}, {"HMSG", OpHMsg}, {"+OK", OpOK}, {"-ERR", OpErr},
}

// NewParser returns a parser for the given side with limits (zero = defaults).
func NewParser(side Side, lim Limits) *Parser {
	p := &Parser{side: side, allow: serverOps}
	if side == ClientSide {
		p.allow = clientOps
	}
	p.mcl = clampLimit(lim.MaxControlLine, DefaultMaxControlLine, MaxControlLineLimit)
	p.maxPayload = clampLimit(lim.MaxPayload, DefaultMaxPayload, MaxPayloadLimit)
	return p
}

// clampLimit maps n <= 0 to def and caps it at max.
func clampLimit(n, def, max int) int {
	if n <= 0 {
		return def
	}
	if n > max {
		return max
	}
	return n
}

// SetMaxPayload changes the payload limit (e.g. after CONNECT or INFO).
// n <= 0 restores DefaultMaxPayload; n is capped at MaxPayloadLimit. The new
// limit applies from the next control line parsed; a frame whose control
// line was already accepted completes under the limit it was checked with.
// It may be called from the Parse callback.
func (p *Parser) SetMaxPayload(n int) {
	p.maxPayload = clampLimit(n, DefaultMaxPayload, MaxPayloadLimit)
}

// SetMaxControlLine changes the control line limit, as SetMaxPayload does
// the payload limit. A hub lowers it until a connection has authenticated.
func (p *Parser) SetMaxControlLine(n int) {
	p.mcl = clampLimit(n, DefaultMaxControlLine, MaxControlLineLimit)
}

// Buffered reports how many bytes of a partial frame the parser holds.
// It never exceeds MaxControlLine + MaxPayload + 2 (the payload's CRLF).
func (p *Parser) Buffered() int { return len(p.pend) }

// Parse consumes all of buf, calling fn once per complete frame in order.
// It returns fn's first error, or a *Error on a protocol violation, after
// which the parser must not be used again.
//
// When a frame lies entirely within buf, the Frame's slices alias buf (no
// copy); only a frame that straddles calls is copied into the parser's own
// buffer. Either way the *Frame and its slices are valid only until fn
// returns. fn must be non-nil and must not call Parse. After an error every
// later call returns the same error.
func (p *Parser) Parse(buf []byte, fn func(f *Frame) error) error {
	if p.err != nil {
		return p.err
	}
	for len(buf) > 0 {
		if len(p.pend) > 0 {
			n, done, err := p.fill(buf)
			if err != nil {
				return p.fail(err)
			}
			buf = buf[n:]
			if !done {
				p.frame = Frame{}
				return nil // all of buf is now pending
			}
			err = fn(&p.frame)
			p.release()
			if err != nil {
				return p.fail(err)
			}
			continue
		}
		n, err := p.decode(buf, p.maxPayload)
		if err != nil {
			return p.fail(err)
		}
		if n == 0 {
			// The frame straddles this call: keep what arrived.
			limit := p.need
			if limit == 0 {
				limit = p.mcl
			}
			p.pend = p.appendPending(buf, limit)
			p.frame = Frame{}
			return nil
		}
		buf = buf[n:]
		if err := fn(&p.frame); err != nil {
			return p.fail(err)
		}
	}
	p.frame = Frame{} // do not keep the caller's buffer reachable
	return nil
}

// fail makes err sticky and drops any pending bytes.
func (p *Parser) fail(err error) error {
	p.err = err
	p.pend = nil
	p.need = 0
	p.frame = Frame{}
	return err
}

// release forgets the completed pending frame, keeping its buffer for the
// next straddling frame (see Shrink).
func (p *Parser) release() {
	p.pend = p.pend[:0]
	p.need = 0
	p.frame = Frame{} // drop references into the pending buffer
}

// Shrink releases the parser's buffer if it is larger than 4 KiB and holds
// no partial frame. Call it when the input pauses (a read returned less
// than the buffer could hold): a stream of large frames then reuses one
// buffer, and an idle connection keeps at most 4 KiB.
func (p *Parser) Shrink() {
	if len(p.pend) == 0 && cap(p.pend) > maxRetained {
		p.pend = nil
	}
}

// fill continues the pending frame with bytes from the start of buf. It
// takes only bytes that belong to that frame and reports how many it took
// and whether the frame is now complete (decoded into p.frame from
// p.pend).
func (p *Parser) fill(buf []byte) (n int, done bool, err error) {
	if p.need == 0 {
		// The control line is incomplete: p.pend holds fewer than mcl
		// bytes and no '\n'. Look only as far as the limit allows.
		w := min(len(buf), p.mcl-len(p.pend))
		nl := bytes.IndexByte(buf[:w], '\n')
		if nl < 0 {
			p.pend = p.appendPending(buf[:w], p.mcl)
			if err := p.checkOpPrefix(p.pend); err != nil {
				return 0, false, err
			}
			if len(p.pend) >= p.mcl {
				return 0, false, newError(ErrMaxControlLine, "no end of line within %d bytes: %s", p.mcl, snippet(p.pend))
			}
			return w, false, nil // w == len(buf) here
		}
		p.pend = p.appendPending(buf[:nl+1], p.mcl)
		n = nl + 1
		m, err := p.decode(p.pend, p.maxPayload)
		if err != nil {
			return 0, false, err
		}
		if m > 0 {
			return n, true, nil // an op without payload
		}
		// p.need is now set: the payload follows.
	}
	k := min(len(buf)-n, p.need-len(p.pend))
	p.pend = p.appendPending(buf[n:n+k], p.need)
	n += k
	if len(p.pend) < p.need {
		return n, false, nil
	}
	// Decode again now that the frame is contiguous; the control line was
	// already checked against the payload limit when it arrived.
	if _, err := p.decode(p.pend, noLimit); err != nil {
		return 0, false, err
	}
	return n, true, nil
}

// appendPending appends data to p.pend, growing it only as bytes arrive:
// the new capacity is at most twice the old one (at least minPending) and
// never more than limit, the size of the frame when known. It never sizes
// a buffer from a peer's length field alone.
func (p *Parser) appendPending(data []byte, limit int) []byte {
	b := p.pend
	n := len(b) + len(data)
	if n > cap(b) {
		c := max(2*cap(b), minPending)
		c = max(min(c, limit), n)
		nb := make([]byte, len(b), c)
		copy(nb, b)
		b = nb
	}
	return append(b, data...)
}

// decode parses one frame at the start of b into p.frame, checking payload
// sizes against limit. It returns the frame's length, or 0 when b holds
// only part of a frame; then p.need is the frame's total length if its
// control line is complete, or 0 if not.
func (p *Parser) decode(b []byte, limit int) (int, error) {
	w := min(len(b), p.mcl)
	nl := bytes.IndexByte(b[:w], '\n')
	if nl < 0 {
		if err := p.checkOpPrefix(b[:w]); err != nil {
			return 0, err
		}
		if w >= p.mcl {
			return 0, newError(ErrMaxControlLine, "no end of line within %d bytes: %s", p.mcl, snippet(b[:w]))
		}
		p.need = 0
		return 0, nil
	}
	line := b[:nl]
	if nl > 0 && line[nl-1] == '\r' {
		line = line[:nl-1]
	}
	size, err := p.parseLine(line, limit)
	if err != nil {
		return 0, err
	}
	if size < 0 {
		return nl + 1, nil
	}
	start := nl + 1
	end := start + size
	if len(b) < end+2 {
		p.need = end + 2
		return 0, nil
	}
	if b[end] != '\r' || b[end+1] != '\n' {
		return 0, newError(ErrMissingCRLF, "%s after %d-byte payload of %s", snippet(b[end:end+2]), size, snippet(line))
	}
	p.frame.Payload = b[start:end:end]
	return end + 2, nil
}

// parseLine parses a control line (without its line end) into p.frame. It
// returns the payload size that follows the line, or -1 for ops without
// a payload.
func (p *Parser) parseLine(line []byte, limit int) (int, error) {
	i := nextBlank(line, 0)
	op := lookupOp(line[:i])
	if op == 0 || p.allow&(1<<op) == 0 {
		return 0, newError(ErrUnknownOp, "%s", snippet(line))
	}
	rest := line[i:]
	f := &p.frame
	*f = Frame{Op: op}
	switch op {
	case OpPing, OpPong, OpOK:
		if len(trimSpace(rest)) != 0 {
			return 0, newError(ErrInvalidArgs, "%s takes no arguments: %s", opName(op), snippet(line))
		}
		return -1, nil
	case OpConnect, OpInfo:
		body := trimSpace(rest)
		if len(body) == 0 {
			return 0, newError(ErrInvalidArgs, "%s without a JSON body", opName(op))
		}
		f.Payload = body
		return -1, nil
	case OpErr:
		msg := trimSpace(rest)
		if len(msg) > 0 && msg[0] == '\'' {
			msg = msg[1:]
		}
		if len(msg) > 0 && msg[len(msg)-1] == '\'' {
			msg = msg[:len(msg)-1]
		}
		f.Payload = msg
		return -1, nil
	}

	var o [maxArgs][2]int
	n := splitArgs(rest, &o)
	switch op {
	case OpPub: // subject [reply] size
		switch n {
		case 2:
			f.Subject = arg(rest, &o, 0)
		case 3:
			f.Subject, f.Reply = arg(rest, &o, 0), arg(rest, &o, 1)
		default:
			return 0, badArgs(op, line)
		}
		return payloadSize(op, line, arg(rest, &o, n-1), limit)
	case OpHPub: // subject [reply] hdrsize totalsize
		switch n {
		case 3:
			f.Subject = arg(rest, &o, 0)
		case 4:
			f.Subject, f.Reply = arg(rest, &o, 0), arg(rest, &o, 1)
		default:
			return 0, badArgs(op, line)
		}
		return p.headerSizes(op, line, arg(rest, &o, n-2), arg(rest, &o, n-1), limit)
	case OpMsg: // subject sid [reply] size
		switch n {
		case 3:
			f.Subject, f.SID = arg(rest, &o, 0), arg(rest, &o, 1)
		case 4:
			f.Subject, f.SID, f.Reply = arg(rest, &o, 0), arg(rest, &o, 1), arg(rest, &o, 2)
		default:
			return 0, badArgs(op, line)
		}
		return payloadSize(op, line, arg(rest, &o, n-1), limit)
	case OpHMsg: // subject sid [reply] hdrsize totalsize
		switch n {
		case 4:
			f.Subject, f.SID = arg(rest, &o, 0), arg(rest, &o, 1)
		case 5:
			f.Subject, f.SID, f.Reply = arg(rest, &o, 0), arg(rest, &o, 1), arg(rest, &o, 2)
		default:
			return 0, badArgs(op, line)
		}
		return p.headerSizes(op, line, arg(rest, &o, n-2), arg(rest, &o, n-1), limit)
	case OpSub: // subject [queue] sid
		switch n {
		case 2:
			f.Subject, f.SID = arg(rest, &o, 0), arg(rest, &o, 1)
		case 3:
			f.Subject, f.Queue, f.SID = arg(rest, &o, 0), arg(rest, &o, 1), arg(rest, &o, 2)
		default:
			return 0, badArgs(op, line)
		}
		return -1, nil
	case OpUnsub: // sid [max]
		switch n {
		case 1:
			f.SID = arg(rest, &o, 0)
		case 2:
			f.SID = arg(rest, &o, 0)
			m := parseSize(arg(rest, &o, 1))
			if m < 0 {
				return 0, newError(ErrInvalidArgs, "UNSUB max %s is not a decimal count: %s", snippet(arg(rest, &o, 1)), snippet(line))
			}
			f.Max = m
		default:
			return 0, badArgs(op, line)
		}
		return -1, nil
	}
	return 0, newError(ErrUnknownOp, "%s", snippet(line)) // unreachable
}

// headerSizes parses the header and total size of HPUB/HMSG, stores the
// header size in p.frame and returns the total.
func (p *Parser) headerSizes(op Op, line, hdr, total []byte, limit int) (int, error) {
	h := parseSize(hdr)
	if h < 0 {
		return 0, newError(ErrInvalidSize, "%s header size %s is not a decimal size: %s", opName(op), snippet(hdr), snippet(line))
	}
	t, err := payloadSize(op, line, total, limit)
	if err != nil {
		return 0, err
	}
	if h > int64(t) {
		return 0, newError(ErrInvalidSize, "%s header size %d exceeds total size %d", opName(op), h, t)
	}
	p.frame.HeaderLen = int(h)
	return t, nil
}

// payloadSize parses a size field and checks it against limit.
func payloadSize(op Op, line, field []byte, limit int) (int, error) {
	n := parseSize(field)
	if n < 0 {
		return 0, newError(ErrInvalidSize, "%s size %s is not a decimal size: %s", opName(op), snippet(field), snippet(line))
	}
	if n > int64(limit) {
		return 0, newError(ErrMaxPayload, "%s payload of %d bytes exceeds the limit of %d", opName(op), n, limit)
	}
	return int(n), nil
}

// badArgs reports a wrong argument count.
func badArgs(op Op, line []byte) error {
	return newError(ErrInvalidArgs, "wrong number of %s arguments: %s", opName(op), snippet(line))
}

// parseSize parses 1 to maxSizeDigits ASCII decimal digits, returning -1
// for anything else (empty, sign, exponent, too long). It does not
// allocate.
func parseSize(b []byte) int64 {
	if len(b) == 0 || len(b) > maxSizeDigits {
		return -1
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// isBlank reports whether c separates arguments: a space or a tab.
func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// splitArgs splits s at runs of spaces and tabs, storing each argument's
// start and end offsets in a (offsets, not slices, so the stores need no
// write barriers). It returns the number of arguments, or len(a) when
// there are more than len(a)-1 (so that any op sees a wrong count).
func splitArgs(s []byte, a *[maxArgs][2]int) int {
	n := 0
	i := 0
	for {
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		if i == len(s) || n == len(a) {
			return n
		}
		j := nextBlank(s, i)
		a[n] = [2]int{i, j}
		n++
		i = j
	}
}

// arg returns argument k of s as found by splitArgs.
func arg(s []byte, o *[maxArgs][2]int, k int) []byte {
	return s[o[k][0]:o[k][1]:o[k][1]]
}

// SWAR constants: one bit or byte value in every byte of a uint64.
const (
	lsbs   = 0x0101010101010101
	msbs   = 0x8080808080808080
	spaces = ' ' * lsbs
	tabs   = '\t' * lsbs
)

// nextBlank returns the index of the first space or tab in s at or after
// i, or len(s). It tests eight bytes at a time: subjects are often longer
// than that, and this is the parser's innermost loop.
func nextBlank(s []byte, i int) int {
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		sp, tb := x^spaces, x^tabs // a zero byte marks a match
		// The lowest byte flagged by (v-lsbs)&^v&msbs is a true zero
		// byte of v (only bytes above one can be false positives).
		if m := ((sp-lsbs)&^sp | (tb-lsbs)&^tb) & msbs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(s) && !isBlank(s[i]) {
		i++
	}
	return i
}

// trimSpace drops leading and trailing spaces and tabs.
func trimSpace(s []byte) []byte {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j:j]
}

// upper maps an ASCII lower-case letter to upper case.
func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// equalFold reports whether b equals the upper-case ASCII name, ignoring
// ASCII case.
func equalFold(b []byte, name string) bool {
	if len(b) != len(name) {
		return false
	}
	for i := range len(b) {
		if upper(b[i]) != name[i] {
			return false
		}
	}
	return true
}

// lookupOp returns the operation named by tok (any ASCII case), or 0.
func lookupOp(tok []byte) Op {
	switch len(tok) {
	case 3:
		switch upper(tok[0]) {
		case 'P':
			if equalFold(tok, "PUB") {
				return OpPub
			}
		case 'S':
			if equalFold(tok, "SUB") {
				return OpSub
			}
		case 'M':
			if equalFold(tok, "MSG") {
				return OpMsg
			}
		case '+':
			if equalFold(tok, "+OK") {
				return OpOK
			}
		}
	case 4:
		switch upper(tok[0]) {
		case 'P':
			if equalFold(tok, "PING") {
				return OpPing
			}
			if equalFold(tok, "PONG") {
				return OpPong
			}
		case 'H':
			if equalFold(tok, "HPUB") {
				return OpHPub
			}
			if equalFold(tok, "HMSG") {
				return OpHMsg
			}
		case 'I':
			if equalFold(tok, "INFO") {
				return OpInfo
			}
		case '-':
			if equalFold(tok, "-ERR") {
				return OpErr
			}
		}
	case 5:
		if equalFold(tok, "UNSUB") {
			return OpUnsub
		}
	case 7:
		if equalFold(tok, "CONNECT") {
			return OpConnect
		}
	}
	return 0
}

// opName returns the upper-case wire name of op.
func opName(op Op) string {
	for _, o := range opNames {
		if o.op == op {
			return o.name
		}
	}
	return "?"
}

// checkOpPrefix fails early on an incomplete control line whose operation
// name already cannot be one this side accepts, so that a peer speaking
// another protocol (HTTP, a TLS handshake) gets "Unknown Protocol
// Operation" at once instead of after MaxControlLine bytes. The verdict is
// the same however the line was split: a prefix rejected here is rejected
// by parseLine too once the line is complete.
func (p *Parser) checkOpPrefix(b []byte) error {
	i := 0
	for i < len(b) && b[i] != ' ' && b[i] != '\t' && b[i] != '\r' {
		if i == maxOpLen {
			return newError(ErrUnknownOp, "%s", snippet(b))
		}
		i++
	}
	tok := b[:i]
	if i < len(b) && b[i] != '\r' {
		// The name is complete: it must be an op of this side.
		if op := lookupOp(tok); op != 0 && p.allow&(1<<op) != 0 {
			return nil
		}
		return newError(ErrUnknownOp, "%s", snippet(b))
	}
	for _, o := range opNames {
		if p.allow&(1<<o.op) != 0 && len(tok) <= len(o.name) && equalFold(tok, o.name[:len(tok)]) {
			return nil
		}
	}
	return newError(ErrUnknownOp, "%s", snippet(b))
}
