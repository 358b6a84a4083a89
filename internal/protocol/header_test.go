package protocol

import (
	"errors"
	"reflect"
	"testing"
)

type fields = map[string][]string

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Header
	}{
		{"empty", "NATS/1.0\r\n\r\n", Header{Fields: fields{}}},
		{"no responders", NoRespondersHeader, Header{Status: 503, Fields: fields{}}},
		{"status description", "NATS/1.0 503 No Responders\r\n\r\n",
			Header{Status: 503, Description: "No Responders", Fields: fields{}}},
		{"status tabs", "NATS/1.0\t408 \tRequest Timeout \t\r\n\r\n",
			Header{Status: 408, Description: "Request Timeout", Fields: fields{}}},
		{"trailing space only", "NATS/1.0  \r\n\r\n", Header{Fields: fields{}}},
		{"heartbeat", "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\nNats-Last-Stream: 7\r\n\r\n",
			Header{Status: 100, Description: "Idle Heartbeat", Fields: fields{"Nats-Last-Consumer": {"5"}, "Nats-Last-Stream": {"7"}}}},
		{"fields", "NATS/1.0\r\nA: 1\r\nB: two words\r\n\r\n",
			Header{Fields: fields{"A": {"1"}, "B": {"two words"}}}},
		{"repeated key", "NATS/1.0\r\nA: 1\r\nA: 2\r\nA: 1\r\n\r\n",
			Header{Fields: fields{"A": {"1", "2", "1"}}}},
		{"case preserved", "NATS/1.0\r\nnats-msg-id: a\r\nNats-Msg-Id: b\r\nNATS-MSG-ID: c\r\n\r\n",
			Header{Fields: fields{"nats-msg-id": {"a"}, "Nats-Msg-Id": {"b"}, "NATS-MSG-ID": {"c"}}}},
		{"value whitespace", "NATS/1.0\r\nA:\t  x y  \r\nB:z\r\nC:\r\nD: \r\n\r\n",
			Header{Fields: fields{"A": {"x y  "}, "B": {"z"}, "C": {""}, "D": {""}}}},
		{"colon in value", "NATS/1.0\r\nUrl: http://x:1/\r\n\r\n",
			Header{Fields: fields{"Url": {"http://x:1/"}}}},
		{"odd key", "NATS/1.0\r\nA B : v\r\n\r\n",
			Header{Fields: fields{"A B ": {"v"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeader([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseHeader(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(*h, tc.want) {
				t.Fatalf("ParseHeader(%q) = %+v, want %+v", tc.in, *h, tc.want)
			}
			// And back: AppendHeader(h) parses to the same header.
			h2, err := ParseHeader(AppendHeader(nil, h))
			if err != nil || !reflect.DeepEqual(h2, h) {
				t.Fatalf("round trip: %+v %v", h2, err)
			}
		})
	}
}

func TestParseHeaderErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"\r\n\r\n",
		"NATS/1.1\r\n\r\n",
		"nats/1.0\r\n\r\n",
		"HTTP/1.0 200\r\n\r\n",
		"NATS/1.0x\r\n\r\n",
		"NATS/1.0",
		"NATS/1.0\r\n",
		"NATS/1.0\r\nA: b\r\n",
		"NATS/1.0\r\nA: b",
		"NATS/1.0\r\n\r",
		"NATS/1.0\n\n",
		"NATS/1.0\r\nA: b\n\r\n",
		"NATS/1.0\r\nno colon\r\n\r\n",
		"NATS/1.0\r\n: empty key\r\n\r\n",
		"NATS/1.0\r\nA: b\rc\r\n\r\n",
		"NATS/1.0 50\r\n\r\n",
		"NATS/1.0 5033\r\n\r\n",
		"NATS/1.0 abc\r\n\r\n",
		"NATS/1.0 000\r\n\r\n",
		"NATS/1.0 099 x\r\n\r\n",
		"NATS/1.0 -50\r\n\r\n",
		"NATS/1.0\r\n\r\nbody",
		"NATS/1.0\r\n\r\n\r\n",
	} {
		h, err := ParseHeader([]byte(in))
		if !errors.Is(err, ErrInvalidHeader) || h != nil {
			t.Errorf("ParseHeader(%q) = %+v, %v; want %v", in, h, err, ErrInvalidHeader)
		}
	}
}

func TestAppendHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    *Header
		want string
	}{
		{"nil", nil, "NATS/1.0\r\n\r\n"},
		{"empty", &Header{}, "NATS/1.0\r\n\r\n"},
		{"no responders", &Header{Status: StatusNoResponders}, NoRespondersHeader},
		{"description", &Header{Status: 408, Description: "Request Timeout"}, "NATS/1.0 408 Request Timeout\r\n\r\n"},
		{"description without status", &Header{Description: "ignored"}, "NATS/1.0\r\n\r\n"},
		{"sorted", &Header{Fields: fields{"b": {"2"}, "A": {"1"}, "a": {"x", "y"}}},
			"NATS/1.0\r\nA: 1\r\na: x\r\na: y\r\nb: 2\r\n\r\n"},
		{"empty key and no values skipped", &Header{Fields: fields{"": {"v"}, "k": {}}}, "NATS/1.0\r\n\r\n"},
		{"crlf replaced", &Header{Status: 500, Description: "a\r\nb", Fields: fields{"K\n": {"v\r\nInjected: 1"}}},
			"NATS/1.0 500 a  b\r\nK : v  Injected: 1\r\n\r\n"},
	} {
		got := AppendHeader(nil, tc.h)
		if string(got) != tc.want {
			t.Errorf("%s: AppendHeader = %q, want %q", tc.name, got, tc.want)
		}
		if _, err := ParseHeader(got); err != nil {
			t.Errorf("%s: output does not parse: %v", tc.name, err)
		}
	}

	// Many keys (more than the stack array) stay sorted.
	h := &Header{}
	for _, k := range []string{"q", "w", "e", "r", "t", "y", "u", "i", "o", "p", "a", "s", "d", "f", "g", "h", "j", "k", "l", "z"} {
		h.Add(k, k)
	}
	got := string(AppendHeader(nil, h))
	want := "NATS/1.0\r\na: a\r\nd: d\r\ne: e\r\nf: f\r\ng: g\r\nh: h\r\ni: i\r\nj: j\r\nk: k\r\nl: l\r\no: o\r\np: p\r\nq: q\r\nr: r\r\ns: s\r\nt: t\r\nu: u\r\nw: w\r\ny: y\r\nz: z\r\n\r\n"
	if got != want {
		t.Errorf("20 keys: %q", got)
	}
	if h.Get("q") != "q" || h.Get("Q") != "" || (&Header{}).Get("x") != "" {
		t.Error("Get")
	}

	small := &Header{Status: 503, Fields: fields{"A": {"1"}, "B": {"2"}}}
	buf := make([]byte, 0, 256)
	if a := testing.AllocsPerRun(100, func() { buf = AppendHeader(buf[:0], small) }); a != 0 {
		t.Errorf("AppendHeader: %v allocs, want 0", a)
	}
}

// A header built with AppendHeader travels in HPUB and parses back.
func TestHeaderInHPub(t *testing.T) {
	h := &Header{Fields: fields{"Nats-Msg-Id": {"abc"}}}
	hdr := AppendHeader(nil, h)
	frames, err := splitWays(t, ServerSide, Limits{}, AppendHPub(nil, "s", "", hdr, nil))
	if err != nil || len(frames) != 1 {
		t.Fatal(err)
	}
	f := frames[0]
	if f.HeaderLen != len(f.Payload) {
		t.Fatalf("empty body: HeaderLen %d, payload %d", f.HeaderLen, len(f.Payload))
	}
	got, err := ParseHeader(f.Payload[:f.HeaderLen])
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("ParseHeader = %+v, %v", got, err)
	}
}
