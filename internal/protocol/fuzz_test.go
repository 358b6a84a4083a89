package protocol

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// fuzzLimits are the limits a fuzz input runs under, picked by its seed:
// the defaults, and small ones that the fuzzer can reach.
var fuzzLimits = []Limits{
	{},
	{MaxControlLine: 16, MaxPayload: 8},
	{MaxControlLine: 48, MaxPayload: 100},
}

var serverSeeds = []string{
	"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}\r\nPING\r\n",
	"PUB foo 5\r\nhello\r\n",
	"PUB foo.bar _INBOX.x 0\r\n\r\nPUB a 2\r\n\r\n\r\n",
	"pub\tfoo \t 3 \r\nabc\r\n",
	"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
	"HPUB foo reply 31 31\r\nNATS/1.0 503 x\r\nA: b\r\nA: c\r\n\r\n\r\n",
	"SUB foo 1\r\nSUB foo q 2\r\nUNSUB 1\r\nUNSUB 2 10\r\n",
	"PING\r\nPONG\r\nping\npong\r\n",
	// Known bad.
	"PUB foo 99999999999999999999\r\n",
	"PUB foo -1\r\n",
	"PUB foo 1e3\r\n",
	"HPUB foo 10 5\r\n",
	"PUB foo 5\r\nhelloXY",
	"PUB foo 2000000\r\n",
	"SUB " + strings.Repeat("x", 5000) + " 1\r\n",
	"MSG foo 1 1\r\nx\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1",
	"UNSUB 1 x\r\n",
	"CONNECT\r\n",
}

var clientSeeds = []string{
	"INFO {\"server_id\":\"x\",\"max_payload\":1048576,\"headers\":true}\r\n+OK\r\n",
	"MSG foo 1 5\r\nhello\r\n",
	"MSG foo 1 _INBOX.x 0\r\n\r\n",
	"msg\tfoo  1 \t 3\r\nabc\r\n",
	"HMSG _INBOX.a 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n",
	"HMSG foo 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
	"PING\r\nPONG\r\n+OK\r\n",
	"-ERR 'Unknown Protocol Operation'\r\n-ERR x\r\n-ERR\r\n",
	// Known bad.
	"MSG foo 1 99999999999999999999\r\n",
	"HMSG foo 1 6 5\r\n",
	"MSG foo 1 5\r\nhelloXY",
	"PUB foo 1\r\nx\r\n",
	"-ERR '" + strings.Repeat("e", 5000) + "'\r\n",
	"INFO\r\n",
}

func FuzzParseServer(f *testing.F) { fuzzParser(f, ServerSide, serverSeeds) }

func FuzzParseClient(f *testing.F) { fuzzParser(f, ClientSide, clientSeeds) }

// fuzzParser checks that input parses to the same frames and error however
// it is split, that limits hold, and that the frames re-encode to a stream
// that parses to the same frames.
func fuzzParser(f *testing.F, side Side, seeds []string) {
	for i, s := range seeds {
		f.Add([]byte(s), uint64(i))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		lim := fuzzLimits[seed%uint64(len(fuzzLimits))]
		p := NewParser(side, lim)
		mcl, maxPayload := p.mcl, p.maxPayload

		want, wantErr := feed(t, side, lim, whole(in))
		r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		ways := [][][]byte{randomSplits(in, r), randomSplits(in, r)}
		if len(in) <= 1024 {
			ways = append(ways, bytewise(in))
		}
		for _, chunks := range ways {
			got, err := feed(t, side, lim, chunks)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("split in %d: frames differ\n got %s\nwant %s", len(chunks), dumpFrames(got), dumpFrames(want))
			}
			if errMsg(err) != errMsg(wantErr) {
				t.Fatalf("split in %d: error %v, whole input gave %v", len(chunks), err, wantErr)
			}
		}

		var re []byte
		for i := range want {
			fr := &want[i]
			switch fr.Op {
			case OpPub, OpHPub, OpMsg, OpHMsg:
				if len(fr.Payload) > maxPayload || fr.HeaderLen > len(fr.Payload) {
					t.Fatalf("%s payload %d bytes (header %d), limit %d", opName(fr.Op), len(fr.Payload), fr.HeaderLen, maxPayload)
				}
			default:
				if len(fr.Payload) > mcl {
					t.Fatalf("%s body %d bytes, control line limit %d", opName(fr.Op), len(fr.Payload), mcl)
				}
			}
			re = appendFrame(re, fr)
			if fr.Op == OpErr && bytes.IndexByte(fr.Payload, '\r') >= 0 { // AppendErr turns CR into a space
				fr.Payload = bytes.ReplaceAll(fr.Payload, []byte("\r"), []byte(" "))
			}
		}
		// Re-encoding may lengthen a control line a little (CRLF for a bare
		// LF, quotes around -ERR), so allow for that.
		relim := Limits{MaxControlLine: mcl + 8, MaxPayload: maxPayload}
		got, err := feed(t, side, relim, whole(re))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("re-encoded frames: %v\n got %s\nwant %s\nstream %q", err, dumpFrames(got), dumpFrames(want), re)
		}
	})
}

// appendFrame re-encodes a parsed frame with the package's encoders.
func appendFrame(s []byte, f *Frame) []byte {
	switch f.Op {
	case OpConnect:
		s = append(s, "CONNECT "...)
		s = append(append(s, f.Payload...), "\r\n"...)
	case OpInfo:
		s = append(s, "INFO "...)
		s = append(append(s, f.Payload...), "\r\n"...)
	case OpPub:
		s = AppendPub(s, string(f.Subject), string(f.Reply), f.Payload)
	case OpHPub:
		s = AppendHPub(s, string(f.Subject), string(f.Reply), f.Payload[:f.HeaderLen], f.Payload[f.HeaderLen:])
	case OpSub:
		s = AppendSub(s, string(f.Subject), string(f.Queue), string(f.SID))
	case OpUnsub:
		s = AppendUnsub(s, string(f.SID), f.Max)
	case OpMsg:
		s = AppendMsg(s, f.Subject, f.SID, f.Reply, f.Payload)
	case OpHMsg:
		s = AppendHMsg(s, f.Subject, f.SID, f.Reply, f.HeaderLen, f.Payload)
	case OpPing:
		s = append(s, Ping...)
	case OpPong:
		s = append(s, Pong...)
	case OpOK:
		s = append(s, OK...)
	case OpErr:
		s = AppendErr(s, string(f.Payload))
	}
	return s
}

// FuzzParseHeader checks that ParseHeader never panics and that an
// accepted header re-encodes to a block that parses to the same header.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		"NATS/1.0\r\n\r\n",
		NoRespondersHeader,
		"NATS/1.0 503 No Responders\r\n\r\n",
		"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1\r\n\r\n",
		"NATS/1.0\r\nA: 1\r\na: 2\r\nA:3\r\nB:\t x \r\n\r\n",
		"NATS/1.0\r\nK: a:b:c\r\n\r\n",
		// Known bad.
		"",
		"NATS/1.1\r\n\r\n",
		"NATS/1.0\r\nA: b\r\n",
		"NATS/1.0\r\nno colon\r\n\r\n",
		"NATS/1.0\n\n",
		"NATS/1.0 5033\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseHeader(in)
		if err != nil {
			if h != nil {
				t.Fatalf("ParseHeader returned a header and %v", err)
			}
			return
		}
		enc := AppendHeader(nil, h)
		h2, err := ParseHeader(enc)
		if err != nil {
			t.Fatalf("re-encoded %q as %q: %v", in, enc, err)
		}
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", in, h2, h)
		}
		if enc2 := AppendHeader(nil, h2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %q then %q", enc, enc2)
		}
	})
}
