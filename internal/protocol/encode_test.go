package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestAppendFrames(t *testing.T) {
	hdr := []byte("NATS/1.0\r\n\r\n")
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"pub", AppendPub(nil, "foo", "", []byte("hello")), "PUB foo 5\r\nhello\r\n"},
		{"pub reply", AppendPub(nil, "foo", "_INBOX.1", []byte("hi")), "PUB foo _INBOX.1 2\r\nhi\r\n"},
		{"pub empty", AppendPub(nil, "foo", "", nil), "PUB foo 0\r\n\r\n"},
		{"hpub", AppendHPub(nil, "foo", "", hdr, []byte("hi")), "HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"},
		{"hpub reply empty body", AppendHPub(nil, "foo", "r", hdr, nil), "HPUB foo r 12 12\r\nNATS/1.0\r\n\r\n\r\n"},
		{"sub", AppendSub(nil, "foo.*", "", "1"), "SUB foo.* 1\r\n"},
		{"sub queue", AppendSub(nil, "foo", "workers", "22"), "SUB foo workers 22\r\n"},
		{"unsub", AppendUnsub(nil, "1", 0), "UNSUB 1\r\n"},
		{"unsub negative max", AppendUnsub(nil, "1", -3), "UNSUB 1\r\n"},
		{"unsub max", AppendUnsub(nil, "1", 10), "UNSUB 1 10\r\n"},
		{"msg", AppendMsg(nil, b("foo"), b("1"), nil, b("hello")), "MSG foo 1 5\r\nhello\r\n"},
		{"msg reply", AppendMsg(nil, b("foo"), b("1"), b("r"), nil), "MSG foo 1 r 0\r\n\r\n"},
		{"hmsg", AppendHMsg(nil, b("foo"), b("1"), nil, 12, b("NATS/1.0\r\n\r\nhi")), "HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"},
		{"hmsg reply", AppendHMsg(nil, b("foo"), b("1"), b("r"), 16, b(NoRespondersHeader)), "HMSG foo 1 r 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"},
		{"err", AppendErr(nil, "Unknown Protocol Operation"), "-ERR 'Unknown Protocol Operation'\r\n"},
		{"err crlf", AppendErr(nil, "a\r\nb\nc"), "-ERR 'a  b c'\r\n"},
		{"err empty", AppendErr(nil, ""), "-ERR ''\r\n"},
		{"append to existing", AppendPub([]byte(Ping), "a", "", nil), "PING\r\nPUB a 0\r\n\r\n"},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if Ping != "PING\r\n" || Pong != "PONG\r\n" || OK != "+OK\r\n" {
		t.Error("fixed frames changed")
	}
}

func TestAppendInfoConnect(t *testing.T) {
	info := &Info{ServerID: "NID", ServerName: "sb", Version: "0.1.0", Go: "go1.26", Host: "127.0.0.1",
		Port: 4222, Headers: true, MaxPayload: 1 << 20, Proto: 1, ClientID: 7,
		ConnectURLs: []string{"a:1", "b:2"}, Nonce: "n<>&\n"}
	frame := AppendInfo(nil, info)
	if !strings.HasPrefix(string(frame), "INFO {") || !strings.HasSuffix(string(frame), "}\r\n") ||
		strings.Count(string(frame), "\n") != 1 {
		t.Fatalf("AppendInfo = %q", frame)
	}
	frames, err := feed(t, ClientSide, Limits{}, whole(frame))
	if err != nil || len(frames) != 1 || frames[0].Op != OpInfo {
		t.Fatalf("parse INFO: %v %s", err, dumpFrames(frames))
	}
	got, err := DecodeInfo(frames[0].Payload)
	if err != nil || !reflect.DeepEqual(got, info) {
		t.Fatalf("DecodeInfo = %+v, %v; want %+v", got, err, info)
	}

	c := &Connect{Verbose: true, Lang: "go", Version: "1.0", Protocol: 1, Echo: true, Headers: true,
		NoResponders: true, Name: "a b", User: "u", Pass: "p'\"\r\n"}
	frame = AppendConnect(nil, c)
	if !strings.HasPrefix(string(frame), "CONNECT {") || !strings.HasSuffix(string(frame), "}\r\n") {
		t.Fatalf("AppendConnect = %q", frame)
	}
	frames, err = feed(t, ServerSide, Limits{}, whole(frame))
	if err != nil || len(frames) != 1 || frames[0].Op != OpConnect {
		t.Fatalf("parse CONNECT: %v %s", err, dumpFrames(frames))
	}
	gotc, err := DecodeConnect(frames[0].Payload)
	if err != nil || !reflect.DeepEqual(gotc, c) {
		t.Fatalf("DecodeConnect = %+v, %v; want %+v", gotc, err, c)
	}

	if got := string(AppendInfo(nil, nil)); !strings.HasPrefix(got, "INFO {\"server_id\":\"\"") {
		t.Errorf("AppendInfo(nil) = %q", got)
	}
	if got := string(AppendConnect(nil, nil)); !strings.HasPrefix(got, "CONNECT {\"verbose\":false") {
		t.Errorf("AppendConnect(nil) = %q", got)
	}

	// Unknown fields are ignored; malformed bodies are ErrInvalidJSON.
	if c, err := DecodeConnect([]byte(`{"verbose":true,"new_option":[1,2]}`)); err != nil || !c.Verbose {
		t.Errorf("DecodeConnect with unknown field: %+v %v", c, err)
	}
	for _, bad := range []string{``, `{`, `[]`, `{"verbose":"yes"}`, `{"port":1}x`} {
		if _, err := DecodeConnect([]byte(bad)); !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("DecodeConnect(%q) = %v, want %v", bad, err, ErrInvalidJSON)
		}
		if _, err := DecodeInfo([]byte(bad)); !errors.Is(err, ErrInvalidJSON) && bad != `{"verbose":"yes"}` {
			t.Errorf("DecodeInfo(%q) = %v, want %v", bad, err, ErrInvalidJSON)
		}
	}
}

// Frames encoded by the Append functions parse back to what was encoded.
func TestEncodeParseRoundTrip(t *testing.T) {
	hdr := AppendHeader(nil, &Header{Status: 503, Description: "No Responders", Fields: map[string][]string{"k": {"v"}}})
	cf := AppendConnect(nil, &Connect{Lang: "go"})
	var s []byte
	s = append(s, cf...)
	s = AppendPub(s, "a.b", "", []byte("one"))
	s = AppendPub(s, "a.b", "reply.x", []byte("two\r\n"))
	s = AppendHPub(s, "h", "", hdr, []byte("body"))
	s = AppendHPub(s, "h", "r", hdr, nil)
	s = AppendSub(s, "a.>", "", "1")
	s = AppendSub(s, "a.*", "q", "2")
	s = AppendUnsub(s, "1", 0)
	s = AppendUnsub(s, "2", 99)
	s = append(s, Ping...)
	s = append(s, Pong...)
	want := []Frame{
		{Op: OpConnect, Payload: cf[len("CONNECT ") : len(cf)-2]},
		{Op: OpPub, Subject: b("a.b"), Payload: b("one")},
		{Op: OpPub, Subject: b("a.b"), Reply: b("reply.x"), Payload: b("two\r\n")},
		{Op: OpHPub, Subject: b("h"), HeaderLen: len(hdr), Payload: append(append([]byte{}, hdr...), "body"...)},
		{Op: OpHPub, Subject: b("h"), Reply: b("r"), HeaderLen: len(hdr), Payload: hdr},
		{Op: OpSub, Subject: b("a.>"), SID: b("1")},
		{Op: OpSub, Subject: b("a.*"), Queue: b("q"), SID: b("2")},
		{Op: OpUnsub, SID: b("1")},
		{Op: OpUnsub, SID: b("2"), Max: 99},
		{Op: OpPing},
		{Op: OpPong},
	}
	got, err := splitWays(t, ServerSide, Limits{}, s)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("server round trip: %v\n got %s\nwant %s", err, dumpFrames(got), dumpFrames(want))
	}
	h, err := ParseHeader(got[3].Payload[:got[3].HeaderLen])
	if err != nil || h.Status != 503 || h.Description != "No Responders" || h.Get("k") != "v" {
		t.Fatalf("header round trip: %+v %v", h, err)
	}

	s = AppendInfo(nil, &Info{ServerID: "x"})
	infoBody := append([]byte{}, s[len("INFO "):len(s)-2]...)
	s = append(s, OK...)
	s = AppendMsg(s, b("a"), b("1"), nil, b("m"))
	s = AppendMsg(s, b("a"), b("1"), b("r"), nil)
	s = AppendHMsg(s, b("a"), b("9"), b("r"), len(hdr), append(append([]byte{}, hdr...), 'x'))
	s = AppendErr(s, "Authorization Violation")
	want = []Frame{
		{Op: OpInfo, Payload: infoBody},
		{Op: OpOK},
		{Op: OpMsg, Subject: b("a"), SID: b("1"), Payload: b("m")},
		{Op: OpMsg, Subject: b("a"), SID: b("1"), Reply: b("r"), Payload: b("")},
		{Op: OpHMsg, Subject: b("a"), SID: b("9"), Reply: b("r"), HeaderLen: len(hdr), Payload: append(append([]byte{}, hdr...), 'x')},
		{Op: OpErr, Payload: b("Authorization Violation")},
	}
	got, err = splitWays(t, ClientSide, Limits{}, s)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("client round trip: %v\n got %s\nwant %s", err, dumpFrames(got), dumpFrames(want))
	}
}

func TestEncodeAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	payload := make([]byte, 100)
	hdr := []byte(NoRespondersHeader)
	subj, sid, reply := b("foo.bar"), b("17"), b("_INBOX.abc")
	for name, fn := range map[string]func(){
		"AppendPub":   func() { buf = AppendPub(buf[:0], "foo.bar", "_INBOX.abc", payload) },
		"AppendHPub":  func() { buf = AppendHPub(buf[:0], "foo.bar", "_INBOX.abc", hdr, payload) },
		"AppendSub":   func() { buf = AppendSub(buf[:0], "foo.bar", "q", "17") },
		"AppendUnsub": func() { buf = AppendUnsub(buf[:0], "17", 1000) },
		"AppendMsg":   func() { buf = AppendMsg(buf[:0], subj, sid, reply, payload) },
		"AppendHMsg":  func() { buf = AppendHMsg(buf[:0], subj, sid, reply, len(hdr), hdr) },
		"AppendErr":   func() { buf = AppendErr(buf[:0], "Maximum Payload Violation") },
		"AppendErrCR": func() { buf = AppendErr(buf[:0], "a\r\nb") },
	} {
		if a := testing.AllocsPerRun(100, fn); a != 0 {
			t.Errorf("%s: %v allocs, want 0", name, a)
		}
	}
}

func TestError(t *testing.T) {
	err := error(newError(ErrMaxPayload, "PUB payload of %d bytes", 5))
	if got := err.Error(); got != "protocol: Maximum Payload Violation: PUB payload of 5 bytes" {
		t.Errorf("Error() = %q", got)
	}
	if got := ErrUnknownOp.Error(); got != "protocol: Unknown Protocol Operation" {
		t.Errorf("sentinel Error() = %q", got)
	}
	if !errors.Is(err, ErrMaxPayload) || errors.Is(err, ErrInvalidSize) {
		t.Error("errors.Is does not match by Msg")
	}
	if errors.Is(err, &Error{Msg: "Maximum Payload Violation", Detail: "other"}) {
		t.Error("errors.Is matched a detailed target")
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Msg != "Maximum Payload Violation" {
		t.Error("errors.As")
	}
	msgs := map[string]bool{}
	for _, e := range []*Error{ErrUnknownOp, ErrMaxControlLine, ErrMaxPayload, ErrInvalidSize,
		ErrInvalidArgs, ErrMissingCRLF, ErrInvalidHeader, ErrInvalidJSON} {
		if e.Detail != "" || msgs[e.Msg] || strings.ContainsAny(e.Msg, "'\r\n") {
			t.Errorf("sentinel %q: must have a unique, quote-free Msg and no Detail", e.Msg)
		}
		msgs[e.Msg] = true
	}
}
