package protocol

import "encoding/json"

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
	// SharedMemory (Switchboard only): this connection may ask the hub for
	// shared-memory rings ($SB.SHM.HELLO).
	SharedMemory bool `json:"sb_shm,omitempty"`
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

// DecodeInfo decodes the body of an INFO frame (Frame.Payload). Unknown
// fields are ignored, as servers add fields over time. A malformed body
// gives an *Error matching ErrInvalidJSON.
func DecodeInfo(body []byte) (*Info, error) {
	var info Info
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, newError(ErrInvalidJSON, "INFO: %v", err)
	}
	return &info, nil
}

// DecodeConnect decodes the body of a CONNECT frame (Frame.Payload).
// Unknown fields are ignored, as clients send options this hub does not
// use. A malformed body gives an *Error matching ErrInvalidJSON.
func DecodeConnect(body []byte) (*Connect, error) {
	var c Connect
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, newError(ErrInvalidJSON, "CONNECT: %v", err)
	}
	return &c, nil
}
