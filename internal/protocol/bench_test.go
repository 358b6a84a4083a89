package protocol

import (
	"bytes"
	"testing"
)

// benchParse parses a buffer of back-to-back copies of frame, reporting
// throughput over the whole buffer.
func benchParse(b *testing.B, side Side, frame []byte) {
	buf := bytes.Repeat(frame, max(1, (64<<10)/len(frame)))
	p := NewParser(side, Limits{})
	frames := 0
	fn := func(*Frame) error { frames++; return nil }
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(buf, fn); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(frames), "ns/frame")
}

func BenchmarkParsePub16B(b *testing.B) {
	benchParse(b, ServerSide, AppendPub(nil, "foo.bar.baz", "", make([]byte, 16)))
}

func BenchmarkParsePub1K(b *testing.B) {
	benchParse(b, ServerSide, AppendPub(nil, "foo.bar.baz", "_INBOX.abcdefgh", make([]byte, 1024)))
}

func BenchmarkParseHPub(b *testing.B) {
	hdr := AppendHeader(nil, &Header{Fields: map[string][]string{"Nats-Msg-Id": {"abcdef"}}})
	benchParse(b, ServerSide, AppendHPub(nil, "foo.bar.baz", "", hdr, make([]byte, 128)))
}

func BenchmarkParseMsg(b *testing.B) {
	benchParse(b, ClientSide, AppendMsg(nil, []byte("foo.bar.baz"), []byte("12"), []byte("_INBOX.abcdefgh"), make([]byte, 128)))
}

// BenchmarkParsePub16BSplit feeds small PUBs in 100-byte reads, so that
// most frames straddle two calls.
func BenchmarkParsePub16BSplit(b *testing.B) {
	frame := AppendPub(nil, "foo.bar.baz", "", make([]byte, 16))
	buf := bytes.Repeat(frame, (64<<10)/len(frame))
	p := NewParser(ServerSide, Limits{})
	fn := func(*Frame) error { return nil }
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < len(buf); i += 100 {
			if err := p.Parse(buf[i:min(i+100, len(buf))], fn); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkAppendMsg(b *testing.B) {
	subj, sid, reply, payload := []byte("foo.bar.baz"), []byte("12"), []byte("_INBOX.abcdefgh"), make([]byte, 128)
	buf := AppendMsg(nil, subj, sid, reply, payload)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMsg(buf[:0], subj, sid, reply, payload)
	}
}

func BenchmarkAppendHMsg(b *testing.B) {
	subj, sid, reply := []byte("foo.bar.baz"), []byte("12"), []byte("_INBOX.abcdefgh")
	payload := append([]byte(NoRespondersHeader), make([]byte, 128)...)
	buf := AppendHMsg(nil, subj, sid, reply, len(NoRespondersHeader), payload)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendHMsg(buf[:0], subj, sid, reply, len(NoRespondersHeader), payload)
	}
}
