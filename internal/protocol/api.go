package protocol

// Op identifies a protocol operation.
type Op uint8

// Operations of the NATS client protocol.
const (
	OpConnect Op = iota + 1 // CONNECT {json}
	OpPub                   // PUB subject [reply] size
	OpHPub                  // HPUB subject [reply] hdrsize totalsize
	OpSub                   // SUB subject [queue] sid
	OpUnsub                 // UNSUB sid [max]
	OpPing                  // PING
	OpPong                  // PONG
	OpInfo                  // INFO {json}
	OpMsg                   // MSG subject sid [reply] size
	OpHMsg                  // HMSG subject sid [reply] hdrsize totalsize
	OpOK                    // +OK
	OpErr                   // -ERR 'message'
)

// Side selects which operations a Parser accepts.
type Side uint8

const (
	// ServerSide parses what clients send: CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG.
	ServerSide Side = iota
	// ClientSide parses what servers send: INFO, MSG, HMSG, PING, PONG, +OK, -ERR.
	ClientSide
)

// Limits bounds what a Parser accepts. Zero fields take the defaults.
type Limits struct {
	MaxControlLine int // longest control line, CRLF included; default 4096
	MaxPayload     int // largest PUB/HPUB/MSG/HMSG payload (headers + body); default 1 MiB
}

// Frame is one parsed operation. Byte slices alias the input or the
// parser's buffer and are valid only until the callback returns.
type Frame struct {
	Op        Op
	Subject   []byte // PUB, HPUB, SUB, MSG, HMSG
	Reply     []byte // PUB, HPUB, MSG, HMSG; nil when absent
	Queue     []byte // SUB; nil when absent
	SID       []byte // SUB, UNSUB, MSG, HMSG
	Max       int64  // UNSUB: auto-unsubscribe after Max messages; 0 when absent
	HeaderLen int    // HPUB, HMSG: leading bytes of Payload that are the header block
	Payload   []byte // PUB/HPUB/MSG/HMSG: header block + body; CONNECT/INFO: the JSON; -ERR: the message without quotes
}
