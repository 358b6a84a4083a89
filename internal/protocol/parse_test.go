package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// b is shorthand for expected byte fields in tables.
func b(s string) []byte { return []byte(s) }

// cloneFrame deep-copies f, keeping nil slices nil.
func cloneFrame(f *Frame) Frame {
	c := *f
	c.Subject = cloneBytes(f.Subject)
	c.Reply = cloneBytes(f.Reply)
	c.Queue = cloneBytes(f.Queue)
	c.SID = cloneBytes(f.SID)
	c.Payload = cloneBytes(f.Payload)
	return c
}

func cloneBytes(s []byte) []byte {
	if s == nil {
		return nil
	}
	return append([]byte{}, s...)
}

// feed parses chunks in order with a fresh parser and returns copies of the
// frames and the first error. It checks the Buffered bound after each call.
func feed(t testing.TB, side Side, lim Limits, chunks [][]byte) ([]Frame, error) {
	t.Helper()
	p := NewParser(side, lim)
	bound := p.mcl + p.maxPayload + 2
	var frames []Frame
	fn := func(f *Frame) error {
		frames = append(frames, cloneFrame(f))
		return nil
	}
	for _, c := range chunks {
		if err := p.Parse(c, fn); err != nil {
			return frames, err
		}
		if p.Buffered() > bound {
			t.Fatalf("Buffered() = %d, want <= %d", p.Buffered(), bound)
		}
	}
	return frames, nil
}

// whole, bytewise and randomSplits cut input three ways.
func whole(in []byte) [][]byte { return [][]byte{in} }

func bytewise(in []byte) [][]byte {
	out := make([][]byte, len(in))
	for i := range in {
		out[i] = in[i : i+1]
	}
	return out
}

func randomSplits(in []byte, r *rand.Rand) [][]byte {
	var out [][]byte
	for len(in) > 0 {
		n := 1 + r.IntN(min(len(in), 1+r.IntN(64)))
		if r.IntN(8) == 0 {
			n = min(len(in), 1+r.IntN(8192))
		}
		out = append(out, in[:n])
		in = in[n:]
	}
	return out
}

// splitWays parses in whole, byte by byte and in random splits, requires
// the same frames and error Msg from each, and returns them.
func splitWays(t *testing.T, side Side, lim Limits, in []byte) ([]Frame, error) {
	t.Helper()
	want, wantErr := feed(t, side, lim, whole(in))
	check := func(how string, chunks [][]byte) {
		t.Helper()
		got, err := feed(t, side, lim, chunks)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: frames differ from whole input\n got %s\nwant %s", how, dumpFrames(got), dumpFrames(want))
		}
		if errMsg(err) != errMsg(wantErr) {
			t.Fatalf("%s: error %v, whole input gave %v", how, err, wantErr)
		}
	}
	check("byte at a time", bytewise(in))
	r := rand.New(rand.NewPCG(1, uint64(len(in))))
	for i := range 20 {
		check(fmt.Sprintf("random split %d", i), randomSplits(in, r))
	}
	return want, wantErr
}

func errMsg(err error) string {
	if err == nil {
		return "<nil>"
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Msg
	}
	return err.Error()
}

func dumpFrames(fs []Frame) string {
	var sb strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&sb, "\n  {%s subj=%q reply=%q queue=%q sid=%q max=%d hdr=%d payload=%q nilreply=%v}",
			opName(f.Op), f.Subject, f.Reply, f.Queue, f.SID, f.Max, f.HeaderLen, f.Payload, f.Reply == nil)
	}
	return sb.String()
}

type parseCase struct {
	name string
	in   string
	want []Frame
}

func runParseCases(t *testing.T, side Side, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitWays(t, side, Limits{}, []byte(tc.in))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse(%q)\n got %s\nwant %s", tc.in, dumpFrames(got), dumpFrames(tc.want))
			}
		})
	}
}

func TestParseServerOps(t *testing.T) {
	runParseCases(t, ServerSide, []parseCase{
		{"connect", "CONNECT {\"verbose\":false, \"name\":\"a b\"}\r\n",
			[]Frame{{Op: OpConnect, Payload: b(`{"verbose":false, "name":"a b"}`)}}},
		{"connect trailing space", "connect \t{}  \r\n",
			[]Frame{{Op: OpConnect, Payload: b(`{}`)}}},
		{"pub", "PUB foo 5\r\nhello\r\n",
			[]Frame{{Op: OpPub, Subject: b("foo"), Payload: b("hello")}}},
		{"pub reply", "PUB foo.bar _INBOX.1 5\r\nhello\r\n",
			[]Frame{{Op: OpPub, Subject: b("foo.bar"), Reply: b("_INBOX.1"), Payload: b("hello")}}},
		{"pub empty", "PUB foo 0\r\n\r\n",
			[]Frame{{Op: OpPub, Subject: b("foo"), Payload: b("")}}},
		{"pub payload with crlf", "PUB foo 4\r\n\r\n\r\n\r\n",
			[]Frame{{Op: OpPub, Subject: b("foo"), Payload: b("\r\n\r\n")}}},
		{"pub lower case", "pub foo 1\r\nx\r\n",
			[]Frame{{Op: OpPub, Subject: b("foo"), Payload: b("x")}}},
		{"pub mixed case", "pUb foo 1\r\nx\r\n",
			[]Frame{{Op: OpPub, Subject: b("foo"), Payload: b("x")}}},
		{"pub tabs and spaces", "PUB\t foo \t\tbar   2 \t\r\nab\r\n",
			[]Frame{{Op: OpPub, Subject: b("foo"), Reply: b("bar"), Payload: b("ab")}}},
		{"pub bare LF control line", "PUB foo 2\nab\r\n",
			[]Frame{{Op: OpPub, Subject: b("foo"), Payload: b("ab")}}},
		{"pub leading zeros", "PUB foo 002\r\nab\r\n",
			[]Frame{{Op: OpPub, Subject: b("foo"), Payload: b("ab")}}},
		{"hpub", "HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
			[]Frame{{Op: OpHPub, Subject: b("foo"), HeaderLen: 12, Payload: b("NATS/1.0\r\n\r\nhi")}}},
		{"hpub reply", "hpub foo r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
			[]Frame{{Op: OpHPub, Subject: b("foo"), Reply: b("r"), HeaderLen: 12, Payload: b("NATS/1.0\r\n\r\nhi")}}},
		{"hpub empty body", "HPUB foo 18 18\r\nNATS/1.0\r\nA: b\r\n\r\n\r\n",
			[]Frame{{Op: OpHPub, Subject: b("foo"), HeaderLen: 18, Payload: b("NATS/1.0\r\nA: b\r\n\r\n")}}},
		{"hpub zero", "HPUB foo 0 0\r\n\r\n",
			[]Frame{{Op: OpHPub, Subject: b("foo"), Payload: b("")}}},
		{"sub", "SUB foo 1\r\n",
			[]Frame{{Op: OpSub, Subject: b("foo"), SID: b("1")}}},
		{"sub queue", "sub foo.* workers 22\r\n",
			[]Frame{{Op: OpSub, Subject: b("foo.*"), Queue: b("workers"), SID: b("22")}}},
		{"sub tabs", "SUB\tfoo\tq\tx1\t\r\n",
			[]Frame{{Op: OpSub, Subject: b("foo"), Queue: b("q"), SID: b("x1")}}},
		{"unsub", "UNSUB 1\r\n",
			[]Frame{{Op: OpUnsub, SID: b("1")}}},
		{"unsub max", "unsub 1 10\r\n",
			[]Frame{{Op: OpUnsub, SID: b("1"), Max: 10}}},
		{"unsub max zero", "UNSUB 1 0\r\n",
			[]Frame{{Op: OpUnsub, SID: b("1")}}},
		{"ping pong", "PING\r\nPONG\r\nping\r\npong \r\nPiNg\n",
			[]Frame{{Op: OpPing}, {Op: OpPong}, {Op: OpPing}, {Op: OpPong}, {Op: OpPing}}},
		{"sequence", "CONNECT {}\r\nSUB a 1\r\nPUB a 1\r\nx\r\nPING\r\nUNSUB 1\r\n",
			[]Frame{
				{Op: OpConnect, Payload: b("{}")},
				{Op: OpSub, Subject: b("a"), SID: b("1")},
				{Op: OpPub, Subject: b("a"), Payload: b("x")},
				{Op: OpPing},
				{Op: OpUnsub, SID: b("1")},
			}},
		{"nothing", "", nil},
	})
}

func TestParseClientOps(t *testing.T) {
	runParseCases(t, ClientSide, []parseCase{
		{"info", "INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n",
			[]Frame{{Op: OpInfo, Payload: b(`{"server_id":"x","max_payload":1048576}`)}}},
		{"info lower", "info  {} \r\n",
			[]Frame{{Op: OpInfo, Payload: b(`{}`)}}},
		{"msg", "MSG foo 1 5\r\nhello\r\n",
			[]Frame{{Op: OpMsg, Subject: b("foo"), SID: b("1"), Payload: b("hello")}}},
		{"msg reply", "msg foo 1 _INBOX.x 5\r\nhello\r\n",
			[]Frame{{Op: OpMsg, Subject: b("foo"), SID: b("1"), Reply: b("_INBOX.x"), Payload: b("hello")}}},
		{"msg empty", "MSG foo 1 0\r\n\r\n",
			[]Frame{{Op: OpMsg, Subject: b("foo"), SID: b("1"), Payload: b("")}}},
		{"msg whitespace", "MSG\tfoo  1\t \tr  3  \r\nabc\r\n",
			[]Frame{{Op: OpMsg, Subject: b("foo"), SID: b("1"), Reply: b("r"), Payload: b("abc")}}},
		{"hmsg", "HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
			[]Frame{{Op: OpHMsg, Subject: b("foo"), SID: b("1"), HeaderLen: 12, Payload: b("NATS/1.0\r\n\r\nhi")}}},
		{"hmsg reply no responders", "HMSG _INBOX.a 2 _INBOX.b 16 16\r\nNATS/1.0 503\r\n\r\n\r\n",
			[]Frame{{Op: OpHMsg, Subject: b("_INBOX.a"), SID: b("2"), Reply: b("_INBOX.b"), HeaderLen: 16, Payload: b(NoRespondersHeader)}}},
		{"ok", "+OK\r\n+ok\r\n", []Frame{{Op: OpOK}, {Op: OpOK}}},
		{"err", "-ERR 'Unknown Protocol Operation'\r\n",
			[]Frame{{Op: OpErr, Payload: b("Unknown Protocol Operation")}}},
		{"err unquoted", "-err Authorization Violation \r\n",
			[]Frame{{Op: OpErr, Payload: b("Authorization Violation")}}},
		{"err empty", "-ERR\r\n-ERR ''\r\n",
			[]Frame{{Op: OpErr, Payload: b("")}, {Op: OpErr, Payload: b("")}}},
		{"err inner quotes", "-ERR 'Permissions Violation for Publish to \"x\"'\r\n",
			[]Frame{{Op: OpErr, Payload: b(`Permissions Violation for Publish to "x"`)}}},
		{"ping pong", "PING\r\nPONG\r\n", []Frame{{Op: OpPing}, {Op: OpPong}}},
	})
}

type errCase struct {
	name string
	side Side
	lim  Limits
	in   string
	want *Error // sentinel
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", DefaultMaxControlLine)
	cases := []errCase{
		// Unknown operations.
		{"unknown op", ServerSide, Limits{}, "FOO bar\r\n", ErrUnknownOp},
		{"empty line", ServerSide, Limits{}, "\r\n", ErrUnknownOp},
		{"bare LF line", ServerSide, Limits{}, "\n", ErrUnknownOp},
		{"leading space", ServerSide, Limits{}, " PING\r\n", ErrUnknownOp},
		{"op suffix", ServerSide, Limits{}, "PUBX foo 1\r\n", ErrUnknownOp},
		{"ops glued", ServerSide, Limits{}, "PINGPONG\r\n", ErrUnknownOp},
		{"connect no space", ServerSide, Limits{}, "CONNECT{}\r\n", ErrUnknownOp},
		{"http", ServerSide, Limits{}, "GET / HTTP/1.1\r\n", ErrUnknownOp},
		{"tls hello", ServerSide, Limits{}, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ErrUnknownOp},
		{"cr in op", ServerSide, Limits{}, "PI\rNG\r\n", ErrUnknownOp},
		{"msg to server", ServerSide, Limits{}, "MSG foo 1 1\r\nx\r\n", ErrUnknownOp},
		{"hmsg to server", ServerSide, Limits{}, "HMSG foo 1 0 0\r\n\r\n", ErrUnknownOp},
		{"info to server", ServerSide, Limits{}, "INFO {}\r\n", ErrUnknownOp},
		{"ok to server", ServerSide, Limits{}, "+OK\r\n", ErrUnknownOp},
		{"err to server", ServerSide, Limits{}, "-ERR 'x'\r\n", ErrUnknownOp},
		{"connect to client", ClientSide, Limits{}, "CONNECT {}\r\n", ErrUnknownOp},
		{"pub to client", ClientSide, Limits{}, "PUB foo 1\r\nx\r\n", ErrUnknownOp},
		{"hpub to client", ClientSide, Limits{}, "HPUB foo 0 0\r\n\r\n", ErrUnknownOp},
		{"sub to client", ClientSide, Limits{}, "SUB foo 1\r\n", ErrUnknownOp},
		{"unsub to client", ClientSide, Limits{}, "UNSUB 1\r\n", ErrUnknownOp},
		{"after good frame", ServerSide, Limits{}, "PING\r\nPUB a 1\r\nx\r\nNOPE\r\n", ErrUnknownOp},

		// Argument counts and values.
		{"pub no size", ServerSide, Limits{}, "PUB foo\r\n", ErrInvalidArgs},
		{"pub no args", ServerSide, Limits{}, "PUB\r\n", ErrInvalidArgs},
		{"pub too many", ServerSide, Limits{}, "PUB a b c 5\r\n", ErrInvalidArgs},
		{"pub far too many", ServerSide, Limits{}, "PUB a b c d e f g h 1\r\n", ErrInvalidArgs},
		{"hpub too few", ServerSide, Limits{}, "HPUB foo 5\r\n", ErrInvalidArgs},
		{"hpub too many", ServerSide, Limits{}, "HPUB a b c 1 5\r\n", ErrInvalidArgs},
		{"sub too few", ServerSide, Limits{}, "SUB foo\r\n", ErrInvalidArgs},
		{"sub too many", ServerSide, Limits{}, "SUB a b c d\r\n", ErrInvalidArgs},
		{"unsub none", ServerSide, Limits{}, "UNSUB\r\n", ErrInvalidArgs},
		{"unsub too many", ServerSide, Limits{}, "UNSUB 1 2 3\r\n", ErrInvalidArgs},
		{"unsub bad max", ServerSide, Limits{}, "UNSUB 1 x\r\n", ErrInvalidArgs},
		{"unsub negative max", ServerSide, Limits{}, "UNSUB 1 -1\r\n", ErrInvalidArgs},
		{"unsub huge max", ServerSide, Limits{}, "UNSUB 1 99999999999999999999\r\n", ErrInvalidArgs},
		{"ping arg", ServerSide, Limits{}, "PING x\r\n", ErrInvalidArgs},
		{"pong arg", ClientSide, Limits{}, "PONG x\r\n", ErrInvalidArgs},
		{"ok arg", ClientSide, Limits{}, "+OK x\r\n", ErrInvalidArgs},
		{"connect empty", ServerSide, Limits{}, "CONNECT\r\n", ErrInvalidArgs},
		{"connect blank", ServerSide, Limits{}, "CONNECT  \t \r\n", ErrInvalidArgs},
		{"info empty", ClientSide, Limits{}, "INFO\r\n", ErrInvalidArgs},
		{"msg too few", ClientSide, Limits{}, "MSG foo 5\r\n", ErrInvalidArgs},
		{"msg too many", ClientSide, Limits{}, "MSG a 1 r x 5\r\n", ErrInvalidArgs},
		{"hmsg too few", ClientSide, Limits{}, "HMSG a 1 5\r\n", ErrInvalidArgs},
		{"hmsg too many", ClientSide, Limits{}, "HMSG a 1 r x 0 5\r\n", ErrInvalidArgs},

		// Sizes.
		{"size overflow", ServerSide, Limits{}, "PUB foo 99999999999999999999\r\n", ErrInvalidSize},
		{"size 19 digits", ServerSide, Limits{}, "PUB foo 1000000000000000000\r\n", ErrInvalidSize},
		{"size negative", ServerSide, Limits{}, "PUB foo -1\r\n", ErrInvalidSize},
		{"size plus", ServerSide, Limits{}, "PUB foo +1\r\n", ErrInvalidSize},
		{"size exponent", ServerSide, Limits{}, "PUB foo 1e3\r\n", ErrInvalidSize},
		{"size hex", ServerSide, Limits{}, "PUB foo 0x10\r\n", ErrInvalidSize},
		{"size word", ServerSide, Limits{}, "PUB foo bar\r\n", ErrInvalidSize},
		{"hpub header > total", ServerSide, Limits{}, "HPUB foo 10 5\r\n", ErrInvalidSize},
		{"hpub bad header size", ServerSide, Limits{}, "HPUB foo x 5\r\n", ErrInvalidSize},
		{"hpub bad total", ServerSide, Limits{}, "HPUB foo 1 -5\r\n", ErrInvalidSize},
		{"msg bad size", ClientSide, Limits{}, "MSG foo 1 -1\r\n", ErrInvalidSize},
		{"hmsg header > total", ClientSide, Limits{}, "HMSG foo 1 6 5\r\n", ErrInvalidSize},
		{"pub over max", ServerSide, Limits{}, "PUB foo 1048577\r\n", ErrMaxPayload},
		{"pub 18 digits", ServerSide, Limits{}, "PUB foo 999999999999999999\r\n", ErrMaxPayload},
		{"pub 2^31", ServerSide, Limits{}, "PUB foo 2147483648\r\n", ErrMaxPayload},
		{"pub 2^63-1 digits", ServerSide, Limits{}, "PUB foo 922337203685477580\r\n", ErrMaxPayload},
		{"pub over small max", ServerSide, Limits{MaxPayload: 10}, "PUB foo 11\r\n", ErrMaxPayload},
		{"hpub over max", ServerSide, Limits{MaxPayload: 10}, "HPUB foo 5 11\r\n", ErrMaxPayload},
		{"msg over max", ClientSide, Limits{MaxPayload: 10}, "MSG foo 1 11\r\n", ErrMaxPayload},
		{"hmsg over max", ClientSide, Limits{}, "HMSG foo 1 0 2000000\r\n", ErrMaxPayload},

		// Payload terminators.
		{"payload too long", ServerSide, Limits{}, "PUB foo 5\r\nhelloXY", ErrMissingCRLF},
		{"payload LF only", ServerSide, Limits{}, "PUB foo 5\r\nhello\nPING\r\n", ErrMissingCRLF},
		{"payload CR CR", ServerSide, Limits{}, "PUB foo 5\r\nhello\r\r", ErrMissingCRLF},
		{"payload short", ServerSide, Limits{}, "PUB foo 5\r\nhel\r\nPING\r\n", ErrMissingCRLF},
		{"hpub terminator", ServerSide, Limits{}, "HPUB foo 0 1\r\nxx\r\n", ErrMissingCRLF},
		{"msg terminator", ClientSide, Limits{}, "MSG foo 1 1\r\nxy\r\n", ErrMissingCRLF},
		{"empty payload terminator", ClientSide, Limits{}, "MSG foo 1 0\r\nx\r\n", ErrMissingCRLF},

		// Control line limit.
		{"long pub", ServerSide, Limits{}, "PUB " + long + " 1\r\nx\r\n", ErrMaxControlLine},
		{"long sub no end", ServerSide, Limits{}, "SUB " + long, ErrMaxControlLine},
		{"long connect", ServerSide, Limits{}, "CONNECT {\"name\":\"" + long + "\"}\r\n", ErrMaxControlLine},
		{"long info", ClientSide, Limits{}, "INFO {\"server_name\":\"" + long + "\"}\r\n", ErrMaxControlLine},
		{"long err", ClientSide, Limits{}, "-ERR '" + long + "'\r\n", ErrMaxControlLine},
		{"long ping", ServerSide, Limits{}, "PING" + strings.Repeat(" ", DefaultMaxControlLine) + "\r\n", ErrMaxControlLine},
		{"small limit", ServerSide, Limits{MaxControlLine: 10}, "SUB foo 12\r\n", ErrMaxControlLine},
		{"small limit LF", ServerSide, Limits{MaxControlLine: 10}, "SUB foo 123\n", ErrMaxControlLine},
		{"after good frame mcl", ServerSide, Limits{MaxControlLine: 16}, "PUB a 1\r\nx\r\nPUB abcdefghij 1\r\nx\r\n", ErrMaxControlLine},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := splitWays(t, tc.side, tc.lim, []byte(tc.in))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %v, want *Error %q", tc.in, err, tc.want.Msg)
			}
			if pe.Msg != tc.want.Msg || !errors.Is(err, tc.want) {
				t.Fatalf("Parse(%q) = %v, want Msg %q", tc.in, err, tc.want.Msg)
			}
			if pe.Detail == "" || len(pe.Detail) > 200 {
				t.Fatalf("Detail %q: want a short non-empty description", pe.Detail)
			}
		})
	}
}

func TestParseControlLineBoundary(t *testing.T) {
	for _, mcl := range []int{16, 100, DefaultMaxControlLine} {
		for _, eol := range []string{"\r\n", "\n"} {
			// "SUB s <sid>" + eol of exactly mcl bytes is accepted, one more is not.
			sid := strings.Repeat("9", mcl-len("SUB s ")-len(eol))
			ok := "SUB s " + sid + eol
			frames, err := splitWays(t, ServerSide, Limits{MaxControlLine: mcl}, []byte(ok))
			if err != nil || len(frames) != 1 || string(frames[0].SID) != sid {
				t.Fatalf("mcl %d eol %q: line of exactly the limit: %v %s", mcl, eol, err, dumpFrames(frames))
			}
			_, err = splitWays(t, ServerSide, Limits{MaxControlLine: mcl}, []byte("SUB s 9"+sid+eol))
			if !errors.Is(err, ErrMaxControlLine) {
				t.Fatalf("mcl %d eol %q: line one over the limit: %v", mcl, eol, err)
			}
		}
	}
}

// A peer that never sends a line end is cut off after MaxControlLine bytes
// with bounded memory, however it sends them.
func TestParseNoLineEndBounded(t *testing.T) {
	const total = 10 << 20
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	p := NewParser(ServerSide, Limits{})
	nop := func(*Frame) error { return nil }
	if err := p.Parse([]byte("PUB "), nop); err != nil {
		t.Fatal(err)
	}
	sent := 4
	var err error
	for sent < total {
		if err = p.Parse(chunk, nop); err != nil {
			break
		}
		sent += len(chunk)
		if p.Buffered() >= DefaultMaxControlLine {
			t.Fatalf("Buffered() = %d after %d bytes", p.Buffered(), sent)
		}
	}
	if !errors.Is(err, ErrMaxControlLine) || sent > 4 {
		t.Fatalf("after %d bytes: %v, want %v on the first chunk", sent, err, ErrMaxControlLine)
	}

	// Byte by byte: the error comes exactly at the limit.
	p = NewParser(ServerSide, Limits{})
	in := append([]byte("SUB "), bytes.Repeat([]byte("y"), 2*DefaultMaxControlLine)...)
	for i := range in {
		err := p.Parse(in[i:i+1], nop)
		if i+1 < DefaultMaxControlLine {
			if err != nil {
				t.Fatalf("byte %d: %v", i, err)
			}
			if p.Buffered() != i+1 {
				t.Fatalf("byte %d: Buffered() = %d", i, p.Buffered())
			}
			continue
		}
		if !errors.Is(err, ErrMaxControlLine) {
			t.Fatalf("byte %d: %v, want %v", i, err, ErrMaxControlLine)
		}
		break
	}
}

// Another protocol is refused on its first bytes, before any line end.
func TestParseUnknownOpEarly(t *testing.T) {
	for _, tc := range []struct {
		side Side
		in   string
	}{
		{ServerSide, "G"},
		{ServerSide, "\x16"},
		{ServerSide, "PUBLISH"},
		{ServerSide, "PUB\x00"},
		{ServerSide, "M"},
		{ServerSide, "PINGPONG"},
		{ServerSide, "PIN G"},
		{ClientSide, "C"},
		{ClientSide, "HP"},
		{ClientSide, "CONNECTED"},
	} {
		p := NewParser(tc.side, Limits{})
		err := p.Parse([]byte(tc.in), func(*Frame) error { return nil })
		if !errors.Is(err, ErrUnknownOp) {
			t.Errorf("side %d, Parse(%q) = %v, want %v", tc.side, tc.in, err, ErrUnknownOp)
		}
	}
	// Valid prefixes wait for more.
	for _, in := range []string{"P", "pu", "PUB", "PUB ", "HPUB", "conn", "UNSUB\t", "PING\r", "SUB foo"} {
		p := NewParser(ServerSide, Limits{})
		if err := p.Parse([]byte(in), func(*Frame) error { return nil }); err != nil || p.Buffered() != len(in) {
			t.Errorf("Parse(%q) = %v, Buffered %d; want nil, %d", in, err, p.Buffered(), len(in))
		}
	}
}

// serverStream and clientStream are valid streams with every op, including
// payloads larger than the retained buffer.
func serverStream() []byte {
	var s []byte
	s = append(s, "CONNECT {\"verbose\":false,\"headers\":true}\r\n"...)
	s = append(s, "SUB foo 1\r\nsub  bar.>\tq 2\r\n"...)
	s = AppendPub(s, "foo", "", []byte("hello"))
	s = AppendPub(s, "foo", "_INBOX.abc", nil)
	s = AppendPub(s, "big", "", bytes.Repeat([]byte("0123456789"), 1000))
	h := AppendHeader(nil, &Header{Fields: map[string][]string{"Nats-Msg-Id": {"1"}, "a": {"x", "y"}}})
	s = AppendHPub(s, "foo", "r", h, []byte("body"))
	s = AppendHPub(s, "foo", "", h, nil)
	s = append(s, "PING\r\npong\n"...)
	s = AppendPub(s, "huge", "", bytes.Repeat([]byte{0, '\r', '\n', 'x'}, 5000))
	s = AppendUnsub(s, "1", 0)
	s = AppendUnsub(s, "2", 5)
	s = AppendPub(s, "after", "", []byte("x"))
	return s
}

func clientStream() []byte {
	var s []byte
	s = AppendInfo(s, &Info{ServerID: "id", MaxPayload: 1 << 20, Headers: true})
	s = append(s, OK...)
	s = AppendMsg(s, b("foo"), b("1"), nil, b("hello"))
	s = AppendMsg(s, b("foo"), b("1"), b("_INBOX.x"), nil)
	s = AppendMsg(s, b("big"), b("9"), nil, bytes.Repeat([]byte("abcdefgh"), 2000))
	s = AppendHMsg(s, b("_INBOX.x"), b("3"), nil, len(NoRespondersHeader), []byte(NoRespondersHeader))
	s = AppendHMsg(s, b("foo"), b("1"), b("r"), 12, []byte("NATS/1.0\r\n\r\nbody"))
	s = append(s, Ping...)
	s = append(s, Pong...)
	s = AppendErr(s, "Permissions Violation for Subscription to \"x\"")
	s = AppendMsg(s, b("huge"), b("1"), nil, bytes.Repeat([]byte("\r\n"), 10000))
	s = AppendMsg(s, b("after"), b("1"), nil, b("x"))
	return s
}

func TestParseSplitEquivalence(t *testing.T) {
	for _, tc := range []struct {
		name   string
		side   Side
		stream []byte
		frames int
	}{
		{"server", ServerSide, serverStream(), 14},
		{"client", ClientSide, clientStream(), 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames, err := splitWays(t, tc.side, Limits{}, tc.stream)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != tc.frames {
				t.Fatalf("got %d frames, want %d:%s", len(frames), tc.frames, dumpFrames(frames))
			}
			// Every split point once: the stream cut in two at i.
			want := frames
			n := len(tc.stream)
			for i := 0; i < n; i++ {
				if i == 1500 && n > 3000 {
					i = n - 1500 // every point near both ends, a stride between
				}
				got, err := feed(t, tc.side, Limits{}, [][]byte{tc.stream[:i], tc.stream[i:]})
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("split at %d: %v, frames differ", i, err)
				}
			}
			for i := 1500; i < n-1500; i += 97 {
				got, err := feed(t, tc.side, Limits{}, [][]byte{tc.stream[:i], tc.stream[i:]})
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("split at %d: %v, frames differ", i, err)
				}
			}
		})
	}
}

func TestParseZeroCopy(t *testing.T) {
	buf := []byte("SUB foo 1\r\nPUB a.b r 3\r\nxyz\r\nHPUB h 12 13\r\nNATS/1.0\r\n\r\nz\r\n")
	p := NewParser(ServerSide, Limits{})
	inBuf := func(s []byte) bool {
		if len(s) == 0 {
			return true
		}
		for i := range buf {
			if &buf[i] == &s[0] {
				return i+len(s) <= len(buf)
			}
		}
		return false
	}
	n := 0
	err := p.Parse(buf, func(f *Frame) error {
		n++
		for _, s := range [][]byte{f.Subject, f.Reply, f.Queue, f.SID, f.Payload} {
			if !inBuf(s) {
				t.Errorf("%s: slice %q does not alias the input", opName(f.Op), s)
			}
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("Parse: %v, %d frames", err, n)
	}
	if p.Buffered() != 0 || p.pend != nil {
		t.Fatalf("whole frames were buffered: Buffered()=%d cap=%d", p.Buffered(), cap(p.pend))
	}
}

// The buffer for a straddling frame grows with the bytes that arrive, not
// with the announced size, and a large one is released afterwards.
func TestParseStraddleBuffer(t *testing.T) {
	const size = 1 << 20
	p := NewParser(ServerSide, Limits{})
	var got []byte
	fn := func(f *Frame) error {
		if f.Op == OpPub {
			got = append(got[:0], f.Payload...)
		}
		return nil
	}
	if err := p.Parse([]byte("PUB foo 1048576\r\n0123456789"), fn); err != nil {
		t.Fatal(err)
	}
	if p.Buffered() != 27 || cap(p.pend) > minPending {
		t.Fatalf("after 10 payload bytes: Buffered()=%d cap=%d", p.Buffered(), cap(p.pend))
	}
	payload := bytes.Repeat([]byte("a"), size-10)
	for i := 0; i < len(payload); i += 1000 {
		chunk := payload[i:min(i+1000, len(payload))]
		if err := p.Parse(chunk, fn); err != nil {
			t.Fatal(err)
		}
		if held := p.Buffered(); cap(p.pend) > max(2*held, minPending) {
			t.Fatalf("holding %d bytes in a buffer of %d", held, cap(p.pend))
		}
	}
	if err := p.Parse([]byte("\r\nPING\r\n"), fn); err != nil {
		t.Fatal(err)
	}
	if len(got) != size || string(got[:12]) != "0123456789aa" {
		t.Fatalf("payload of %d bytes, want %d", len(got), size)
	}
	if p.Buffered() != 0 || cap(p.pend) < size {
		t.Fatalf("after the frame: Buffered()=%d cap=%d, want the buffer kept for the next large frame", p.Buffered(), cap(p.pend))
	}
	p.Shrink()
	if p.Buffered() != 0 || p.pend != nil {
		t.Fatalf("after Shrink: Buffered()=%d cap=%d, want the buffer released", p.Buffered(), cap(p.pend))
	}
	// Shrink never drops a partial frame.
	p.Parse([]byte("PUB foo 3\r\na"), fn)
	p.Shrink()
	p.Parse([]byte("bc\r\n"), fn)
	if string(got) != "abc" {
		t.Fatalf("frame across Shrink: got %q", got)
	}

	// Small straddling frames reuse a small buffer.
	p.Parse([]byte("PUB foo 3\r\nab"), fn)
	p.Parse([]byte("c\r\n"), fn)
	if string(got) != "abc" || p.Buffered() != 0 || cap(p.pend) == 0 || cap(p.pend) > maxRetained {
		t.Fatalf("small frame: got %q, Buffered()=%d cap=%d", got, p.Buffered(), cap(p.pend))
	}
}

func TestParseAllocs(t *testing.T) {
	whole := append(serverStream(), serverStream()...)
	p := NewParser(ServerSide, Limits{})
	n := 0
	fn := func(*Frame) error { n++; return nil }
	if a := testing.AllocsPerRun(50, func() {
		if err := p.Parse(whole, fn); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("whole frames: %v allocs per Parse, want 0", a)
	}

	// Small frames straddling calls reuse the retained buffer.
	in := []byte("PUB foo.bar 16\r\n0123456789abcdef\r\nSUB x 1\r\n")
	p = NewParser(ServerSide, Limits{})
	p.Parse(in[:7], fn)
	p.Parse(in[7:], fn)
	if a := testing.AllocsPerRun(50, func() {
		for i := 0; i < len(in); i += 5 {
			if err := p.Parse(in[i:min(i+5, len(in))], fn); err != nil {
				t.Fatal(err)
			}
		}
	}); a != 0 {
		t.Errorf("split frames: %v allocs per stream, want 0", a)
	}

	c := NewParser(ClientSide, Limits{})
	cs := clientStream()
	if a := testing.AllocsPerRun(50, func() {
		if err := c.Parse(cs, fn); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("client side: %v allocs per Parse, want 0", a)
	}
}

func TestParseCallbackError(t *testing.T) {
	stop := errors.New("stop")
	p := NewParser(ServerSide, Limits{})
	var ops []Op
	err := p.Parse([]byte("PING\r\nPONG\r\nPING\r\n"), func(f *Frame) error {
		ops = append(ops, f.Op)
		if f.Op == OpPong {
			return stop
		}
		return nil
	})
	if err != stop || len(ops) != 2 {
		t.Fatalf("Parse = %v after %v, want %v after PING, PONG", err, ops, stop)
	}
	if err := p.Parse([]byte("PING\r\n"), func(*Frame) error { t.Fatal("called after error"); return nil }); err != stop {
		t.Fatalf("Parse after error = %v, want %v", err, stop)
	}

	// The same from a straddling frame.
	p = NewParser(ServerSide, Limits{})
	p.Parse([]byte("PUB a 1\r\n"), nil)
	if err := p.Parse([]byte("x\r\nPING\r\n"), func(*Frame) error { return stop }); err != stop {
		t.Fatalf("Parse = %v, want %v", err, stop)
	}
}

func TestParseStickyError(t *testing.T) {
	p := NewParser(ServerSide, Limits{})
	err := p.Parse([]byte("PUB a 1\r\nx\r\nBAD\r\n"), func(*Frame) error { return nil })
	if !errors.Is(err, ErrUnknownOp) {
		t.Fatal(err)
	}
	if err2 := p.Parse([]byte("PING\r\n"), func(*Frame) error { t.Fatal("called"); return nil }); err2 != err {
		t.Fatalf("second Parse = %v, want %v", err2, err)
	}
	if p.Buffered() != 0 {
		t.Fatalf("Buffered() = %d after error", p.Buffered())
	}
}

func TestSetMaxPayload(t *testing.T) {
	p := NewParser(ClientSide, Limits{})
	if p.maxPayload != DefaultMaxPayload || p.mcl != DefaultMaxControlLine {
		t.Fatalf("defaults: %d %d", p.maxPayload, p.mcl)
	}
	// Set from the callback, as a client does after INFO.
	err := p.Parse([]byte("INFO {\"max_payload\":4}\r\nMSG a 1 4\r\nabcd\r\n"), func(f *Frame) error {
		if f.Op == OpInfo {
			info, err := DecodeInfo(f.Payload)
			if err != nil {
				return err
			}
			p.SetMaxPayload(int(info.MaxPayload))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Parse([]byte("MSG a 1 5\r\n"), nil); !errors.Is(err, ErrMaxPayload) {
		t.Fatalf("over the new limit: %v", err)
	}

	// A frame already accepted completes under its limit.
	p = NewParser(ServerSide, Limits{})
	p.Parse([]byte("PUB a 5\r\nab"), nil)
	p.SetMaxPayload(1)
	var got string
	if err := p.Parse([]byte("cde\r\n"), func(f *Frame) error { got = string(f.Payload); return nil }); err != nil || got != "abcde" {
		t.Fatalf("pending frame after SetMaxPayload: %v %q", err, got)
	}

	p.SetMaxPayload(0)
	if p.maxPayload != DefaultMaxPayload {
		t.Fatalf("SetMaxPayload(0) = %d", p.maxPayload)
	}
	p.SetMaxPayload(1 << 62)
	if p.maxPayload != MaxPayloadLimit {
		t.Fatalf("SetMaxPayload(huge) = %d", p.maxPayload)
	}
	q := NewParser(ServerSide, Limits{MaxControlLine: -1, MaxPayload: 1 << 40})
	if q.mcl != DefaultMaxControlLine || q.maxPayload != MaxPayloadLimit {
		t.Fatalf("clamped limits: %d %d", q.mcl, q.maxPayload)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "7": 7, "0010": 10, "1048576": 1048576,
		"999999999999999999": 999999999999999999,
		"":                   -1, "-1": -1, "+1": -1, "1e3": -1, " 1": -1, "1 ": -1,
		"1000000000000000000": -1, "99999999999999999999": -1, "١": -1,
	} {
		if got := parseSize([]byte(in)); got != want {
			t.Errorf("parseSize(%q) = %d, want %d", in, got, want)
		}
	}
}
