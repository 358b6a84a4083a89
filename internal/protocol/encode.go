package protocol

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Fixed frames.
const (
	Ping = "PING\r\n"
	Pong = "PONG\r\n"
	OK   = "+OK\r\n"
)

// The encoders below append one complete, CRLF-terminated frame to b and
// return the extended slice, like strconv.AppendInt: they allocate only
// when b must grow. They do not validate subjects, reply subjects, queue
// names or SIDs (internal/subject does); those must be non-empty and free
// of spaces, tabs, CR and LF, or the peer will misparse the frame.

// appendHead appends the part every message frame starts with:
// op (with its space), the subject, the sid if any and the reply if any,
// each followed by a space.
func appendHead[S ~string | ~[]byte](b []byte, op string, subject, sid, reply S) []byte {
	b = append(b, op...)
	b = append(b, subject...)
	b = append(b, ' ')
	if len(sid) > 0 {
		b = append(b, sid...)
		b = append(b, ' ')
	}
	if len(reply) > 0 {
		b = append(b, reply...)
		b = append(b, ' ')
	}
	return b
}

// AppendPub appends "PUB <subject> [reply] <#bytes>\r\n<payload>\r\n".
// An empty reply is left out.
func AppendPub(b []byte, subject, reply string, payload []byte) []byte {
	b = appendHead(b, "PUB ", subject, "", reply)
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, "\r\n"...)
	b = append(b, payload...)
	return append(b, "\r\n"...)
}

// AppendHPub appends "HPUB <subject> [reply] <#header bytes> <#total
// bytes>\r\n<hdr><payload>\r\n", where hdr is a complete header block (see
// AppendHeader) and payload the body. An empty reply is left out.
func AppendHPub(b []byte, subject, reply string, hdr, payload []byte) []byte {
	b = appendHead(b, "HPUB ", subject, "", reply)
	b = strconv.AppendInt(b, int64(len(hdr)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(hdr)+len(payload)), 10)
	b = append(b, "\r\n"...)
	b = append(b, hdr...)
	b = append(b, payload...)
	return append(b, "\r\n"...)
}

// AppendSub appends "SUB <subject> [queue] <sid>\r\n". An empty queue is
// left out.
func AppendSub(b []byte, subject, queue, sid string) []byte {
	b = append(b, "SUB "...)
	b = append(b, subject...)
	b = append(b, ' ')
	if queue != "" {
		b = append(b, queue...)
		b = append(b, ' ')
	}
	b = append(b, sid...)
	return append(b, "\r\n"...)
}

// AppendUnsub appends "UNSUB <sid> [max]\r\n". max <= 0 is left out
// (unsubscribe now).
func AppendUnsub(b []byte, sid string, max int64) []byte {
	b = append(b, "UNSUB "...)
	b = append(b, sid...)
	if max > 0 {
		b = append(b, ' ')
		b = strconv.AppendInt(b, max, 10)
	}
	return append(b, "\r\n"...)
}

// AppendMsg appends "MSG <subject> <sid> [reply] <#bytes>\r\n<payload>\r\n".
// An empty reply is left out. It takes byte slices so the hub can forward
// what it parsed without conversions.
func AppendMsg(b, subject, sid, reply, payload []byte) []byte {
	b = appendHead(b, "MSG ", subject, sid, reply)
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, "\r\n"...)
	b = append(b, payload...)
	return append(b, "\r\n"...)
}

// AppendHMsg appends "HMSG <subject> <sid> [reply] <#header bytes>
// <#total bytes>\r\n<payload>\r\n". payload is the header block followed
// by the body, as in Frame.Payload, and hdrLen the header block's length
// (Frame.HeaderLen); it must be within 0..len(payload). An empty reply is
// left out.
func AppendHMsg(b, subject, sid, reply []byte, hdrLen int, payload []byte) []byte {
	b = appendHead(b, "HMSG ", subject, sid, reply)
	b = strconv.AppendInt(b, int64(hdrLen), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, "\r\n"...)
	b = append(b, payload...)
	return append(b, "\r\n"...)
}

// AppendInfo appends "INFO {json}\r\n". A nil info encodes as the zero
// Info. It uses encoding/json and so allocates; INFO is sent once per
// connection.
func AppendInfo(b []byte, info *Info) []byte {
	if info == nil {
		info = &Info{}
	}
	return appendJSON(append(b, "INFO "...), info)
}

// AppendConnect appends "CONNECT {json}\r\n". A nil c encodes as the zero
// Connect. It uses encoding/json and so allocates; CONNECT is sent once
// per connection.
func AppendConnect(b []byte, c *Connect) []byte {
	if c == nil {
		c = &Connect{}
	}
	return appendJSON(append(b, "CONNECT "...), c)
}

// appendJSON appends the JSON encoding of v and CRLF. encoding/json escapes
// control characters, so the body never contains a line end.
func appendJSON(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		// Info and Connect hold only strings, numbers and bools, which
		// always encode; keep the frame well formed regardless.
		j = []byte("{}")
	}
	b = append(b, j...)
	return append(b, "\r\n"...)
}

// AppendErr appends "-ERR '<msg>'\r\n". CR and LF in msg are replaced by
// spaces so that the frame stays one line.
func AppendErr(b []byte, msg string) []byte {
	b = append(b, "-ERR '"...)
	b = appendLine(b, msg)
	return append(b, "'\r\n"...)
}

// appendLine appends s with every CR and LF replaced by a space.
func appendLine(b []byte, s string) []byte {
	if !strings.ContainsAny(s, "\r\n") {
		return append(b, s...)
	}
	for i := range len(s) {
		c := s[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}
