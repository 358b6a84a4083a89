package protocol

// STUB: replaced by the real implementation (parse.go, encode.go, header.go, json.go).

// Error is a protocol violation. Msg is the stable text sent to the peer in
// -ERR (for example "Maximum Payload Violation"); Detail is for logs.
type Error struct {
	Msg    string
	Detail string
}

func (e *Error) Error() string { return "protocol: " + e.Msg + ": " + e.Detail }

// Parser is a resumable state machine over one direction of a connection.
type Parser struct{}

// NewParser returns a parser for the given side with limits (zero = defaults).
func NewParser(side Side, lim Limits) *Parser { panic("stub") }

// Parse consumes all of buf, calling fn once per complete frame in order.
// It returns fn's first error, or a *Error on a protocol violation, after
// which the parser must not be used again.
func (p *Parser) Parse(buf []byte, fn func(f *Frame) error) error { panic("stub") }

// SetMaxPayload changes the payload limit (e.g. after CONNECT or INFO).
func (p *Parser) SetMaxPayload(n int) { panic("stub") }

// Buffered reports how many bytes of a partial frame the parser holds.
func (p *Parser) Buffered() int { panic("stub") }

// Encoders append a complete frame (CRLF-terminated) to b and return it.
func AppendPub(b []byte, subject, reply string, payload []byte) []byte            { panic("stub") }
func AppendHPub(b []byte, subject, reply string, hdr, payload []byte) []byte      { panic("stub") }
func AppendSub(b []byte, subject, queue, sid string) []byte                       { panic("stub") }
func AppendUnsub(b []byte, sid string, max int64) []byte                          { panic("stub") }
func AppendMsg(b, subject, sid, reply, payload []byte) []byte                     { panic("stub") }
func AppendHMsg(b, subject, sid, reply []byte, hdrLen int, payload []byte) []byte { panic("stub") }
func AppendInfo(b []byte, info *Info) []byte                                      { panic("stub") }
func AppendConnect(b []byte, c *Connect) []byte                                   { panic("stub") }
func AppendErr(b []byte, msg string) []byte                                       { panic("stub") }

// Fixed frames.
const (
	Ping = "PING\r\n"
	Pong = "PONG\r\n"
	OK   = "+OK\r\n"
)

// Header is a NATS message header block: an optional status line and
// MIME-style fields.
type Header struct {
	Status      int    // 0 when the block has no status (e.g. 503 for no responders)
	Description string // text after the status code, may be empty
	Fields      map[string][]string
}

// AppendHeader encodes h as "NATS/1.0[ status[ desc]]\r\nK: V\r\n...\r\n".
func AppendHeader(b []byte, h *Header) []byte { panic("stub") }

// ParseHeader decodes a header block produced by AppendHeader or any NATS client.
func ParseHeader(b []byte) (*Header, error) { panic("stub") }

// Info is the JSON body of INFO.
type Info struct {
	ServerID     string   `json:"server_id"`
	ServerName   string   `json:"server_name"`
	Version      string   `json:"version"`
	Go           string   `json:"go"`
	Host         string   `json:"host"`
	Port         int      `json:"port"`
	Headers      bool     `json:"headers"`
	MaxPayload   int64    `json:"max_payload"`
	Proto        int      `json:"proto"`
	ClientID     uint64   `json:"client_id,omitempty"`
	AuthRequired bool     `json:"auth_required,omitempty"`
	TLSRequired  bool     `json:"tls_required,omitempty"`
	TLSVerify    bool     `json:"tls_verify,omitempty"`
	TLSAvailable bool     `json:"tls_available,omitempty"`
	ConnectURLs  []string `json:"connect_urls,omitempty"`
	ClientIP     string   `json:"client_ip,omitempty"`
	Nonce        string   `json:"nonce,omitempty"`
	LameDuck     bool     `json:"ldm,omitempty"`
}

// Connect is the JSON body of CONNECT.
type Connect struct {
	Verbose      bool   `json:"verbose"`
	Pedantic     bool   `json:"pedantic"`
	TLSRequired  bool   `json:"tls_required"`
	AuthToken    string `json:"auth_token,omitempty"`
	User         string `json:"user,omitempty"`
	Pass         string `json:"pass,omitempty"`
	Name         string `json:"name,omitempty"`
	Lang         string `json:"lang"`
	Version      string `json:"version"`
	Protocol     int    `json:"protocol"`
	Echo         bool   `json:"echo"`
	Headers      bool   `json:"headers"`
	NoResponders bool   `json:"no_responders"`
	JWT          string `json:"jwt,omitempty"`
	Sig          string `json:"sig,omitempty"`
	NKey         string `json:"nkey,omitempty"`
}
