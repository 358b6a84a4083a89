package shm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"pgregory.net/rapid"
)

// encodeFrame builds a whole frame payload with PutFrame.
func encodeFrame(t fataler, subj, reply string, hdr, data []byte) []byte {
	t.Helper()
	p := make([]byte, FrameSize(subj, reply, len(hdr)+len(data)))
	body, err := PutFrame(p, subj, reply, len(hdr))
	if err != nil {
		t.Fatal(err)
	}
	copy(body[copy(body, hdr):], data)
	return p
}

func TestFrameRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		token := rapid.StringMatching(`[a-zA-Z0-9_*>$.\-]{1,40}`)
		subj := token.Draw(t, "subject")
		reply := ""
		if rapid.Bool().Draw(t, "hasReply") {
			reply = token.Draw(t, "reply")
		}
		hdr := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "hdr")
		data := rapid.SliceOfN(rapid.Byte(), 0, 256).Draw(t, "data")
		p := encodeFrame(t, subj, reply, hdr, data)
		if len(p) != FrameHeaderSize+len(subj)+len(reply)+len(hdr)+len(data) {
			t.Fatalf("frame of %d bytes", len(p))
		}
		f, err := ParseFrame(p)
		if err != nil {
			t.Fatal(err)
		}
		if f.Subject != subj || f.Reply != reply || f.HdrLen != len(hdr) ||
			!bytes.Equal(f.Header(), hdr) || !bytes.Equal(f.Data(), data) {
			t.Fatalf("parsed %+v from subject %q reply %q hdr %x data %x", f, subj, reply, hdr, data)
		}
		if len(f.Body) > 0 && unsafe.SliceData(f.Body) != &p[len(p)-len(f.Body)] {
			t.Fatal("Body is not a sub-slice of the payload")
		}
	})
}

func TestFrameErrors(t *testing.T) {
	long := strings.Repeat("a", MaxFrameSubject+1)
	for _, c := range []struct {
		subj, reply string
		hdrLen      int
	}{
		{"", "", 0}, {"a b", "", 0}, {"a\tb", "", 0}, {"a\r", "", 0}, {"\n", "", 0},
		{"a", "r b", 0}, {"a", "r\n", 0}, {long, "", 0}, {"a", long, 0}, {"a", "", -1},
	} {
		if _, err := PutFrame(make([]byte, 100), c.subj, c.reply, c.hdrLen); !errors.Is(err, ErrBadFrame) {
			t.Errorf("PutFrame(%.10q, %.10q, %d): %v, want ErrBadFrame", c.subj, c.reply, c.hdrLen, err)
		}
	}
	if _, err := PutFrame(make([]byte, 14), "abc", "", 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PutFrame into a short buffer: %v", err)
	}
	if _, err := PutFrame(make([]byte, 16), "abc", "", 2); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PutFrame with no room for the header block: %v", err)
	}

	good := encodeFrame(t, "sub.j", "re", []byte("hh"), []byte("dd"))
	bad := map[string][]byte{
		"empty":           nil,
		"short":           good[:FrameHeaderSize-1],
		"truncated reply": good[:FrameHeaderSize+6],
		"no body room":    good[:FrameHeaderSize+7+1],
	}
	mut := func(name string, f func(p []byte)) {
		p := bytes.Clone(good)
		f(p)
		bad[name] = p
	}
	mut("reserved", func(p []byte) { p[FrameOffReserved+3] = 1 })
	mut("empty subject", func(p []byte) { p[0], p[1] = 0, 0 })
	mut("subject too long", func(p []byte) { p[0], p[1] = 0xff, 0xff })
	mut("reply too long", func(p []byte) { p[2], p[3] = 0xff, 0xff })
	mut("header too long", func(p []byte) { p[FrameOffHdrLen] = 5 })
	mut("header huge", func(p []byte) { p[FrameOffHdrLen+3] = 0x80 })
	mut("space in subject", func(p []byte) { p[FrameHeaderSize+1] = ' ' })
	mut("LF in reply", func(p []byte) { p[FrameHeaderSize+5] = '\n' })
	for name, p := range bad {
		if f, err := ParseFrame(p); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: ParseFrame = %+v, %v; want ErrBadFrame", name, f, err)
		}
	}
	if f, err := ParseFrame(good[:FrameHeaderSize+7+2]); err != nil || len(f.Data()) != 0 {
		t.Errorf("frame with no data: %+v, %v", f, err)
	}
}

// TestPublishFrame: frames through a ring, zero-copy on both sides, and a
// frame that does not fit loans nothing.
func TestPublishFrame(t *testing.T) {
	mem := newRing(t, 4, 64)
	w, _ := NewWriter(mem)
	r, _ := NewReader(mem)
	if err := w.PublishFrame("a.b", "", nil, []byte("one")); err != nil {
		t.Fatal(err)
	}
	// Zero copy: build the frame in the loaned slot.
	data := []byte("two")
	n := FrameSize("a.c", "rep", 4+len(data))
	slot, err := w.Loan(n)
	if err != nil {
		t.Fatal(err)
	}
	body, err := PutFrame(slot, "a.c", "rep", 4)
	if err != nil {
		t.Fatal(err)
	}
	copy(body, "HDR:")
	copy(body[4:], data)
	if err := w.Send(n); err != nil {
		t.Fatal(err)
	}
	if err := w.PublishFrame("a.d", "", nil, make([]byte, 64)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
	if err := w.PublishFrame("bad subject", "", nil, nil); !errors.Is(err, ErrBadFrame) {
		t.Errorf("bad subject: %v", err)
	}
	if err := w.Commit(0); !errors.Is(err, ErrNoLoan) {
		t.Errorf("a refused frame left a loan: %v", err)
	}
	for _, want := range []Frame{{Subject: "a.b", Body: []byte("one")}, {Subject: "a.c", Reply: "rep", HdrLen: 4, Body: []byte("HDR:two")}} {
		m, err := r.TryNext()
		if err != nil {
			t.Fatal(err)
		}
		f, err := ParseFrame(m.Data)
		if err != nil || f.Subject != want.Subject || f.Reply != want.Reply || f.HdrLen != want.HdrLen || !bytes.Equal(f.Body, want.Body) {
			t.Errorf("got %+v, %v; want %+v", f, err, want)
		}
		if !r.Release() {
			t.Error("torn")
		}
	}
}

// FuzzParseFrame: ParseFrame never panics, and whatever it accepts
// re-encodes to exactly the payload it parsed, with a valid subject and a
// Body that is the payload's tail.
func FuzzParseFrame(f *testing.F) {
	seed := func(subj, reply string, hdr, data []byte) {
		f.Add(encodeFrame(f, subj, reply, hdr, data))
	}
	seed("a", "", nil, nil)
	seed("foo.bar", "_INBOX.abc.1", []byte("NATS/1.0\r\nK: v\r\n\r\n"), []byte("hello"))
	seed("x.>", "", nil, make([]byte, 100))
	f.Add([]byte{})
	f.Add(make([]byte, FrameHeaderSize))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 'a'})
	f.Fuzz(func(t *testing.T, p []byte) {
		fr, err := ParseFrame(p)
		// The cached parser agrees, on a cold and on a warm cache.
		var c FrameCache
		for range 2 {
			fc, cerr := ParseFrameCached(p, &c)
			if (cerr == nil) != (err == nil) || fc.Subject != fr.Subject || fc.Reply != fr.Reply || fc.HdrLen != fr.HdrLen || len(fc.Body) != len(fr.Body) {
				t.Fatalf("ParseFrameCached %+v %v, ParseFrame %+v %v", fc, cerr, fr, err)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v does not wrap ErrBadFrame", err)
			}
			return
		}
		if fr.Subject == "" || strings.ContainsAny(fr.Subject, " \t\r\n") || strings.ContainsAny(fr.Reply, " \t\r\n") {
			t.Fatalf("accepted subject %q reply %q", fr.Subject, fr.Reply)
		}
		if fr.HdrLen < 0 || fr.HdrLen > len(fr.Body) {
			t.Fatalf("header block %d of a %d-byte body", fr.HdrLen, len(fr.Body))
		}
		if len(fr.Body) > 0 && unsafe.SliceData(fr.Body) != &p[len(p)-len(fr.Body)] {
			t.Fatal("Body is not the payload's tail")
		}
		again := encodeFrame(t, fr.Subject, fr.Reply, fr.Header(), fr.Data())
		if !bytes.Equal(again, p) {
			t.Fatalf("re-encoded %x, parsed from %x", again, p)
		}
	})
}

// TestPutCheckedFrame: without the checks, the same bytes as PutFrame.
func TestPutCheckedFrame(t *testing.T) {
	a, b := make([]byte, 64), make([]byte, 64)
	ba, err1 := PutFrame(a, "sub.ject", "_INBOX.1", 3)
	bb, err2 := PutCheckedFrame(b, "sub.ject", "_INBOX.1", 3)
	if err1 != nil || err2 != nil || len(ba) != len(bb) || string(a) != string(b) {
		t.Fatalf("PutFrame %q %v, PutCheckedFrame %q %v", a, err1, b, err2)
	}
	if _, err := PutCheckedFrame(make([]byte, 8), "sub.ject", "", 0); err == nil {
		t.Fatal("PutCheckedFrame into a buffer too small")
	}
}

// FuzzFrameCache: three payloads parsed in turn with one cache each give
// what ParseFrame gives, whether or not they share the previous one's
// prefix (the fast path compares the prefix bytes against what was
// validated) and whatever the one between them did (an error between two
// frames of one prefix once left the cache with the rejected frame's
// subject: the last seed). Body, the fast path alone, says yes only to a
// frame ParseFrame reads with the cache's subjects and no header block.
func FuzzFrameCache(f *testing.F) {
	a := encodeFrame(f, "foo.bar", "", nil, []byte("0123456789abcdef"))
	pre := a[:FrameHeaderSize+len("foo.bar")]
	h := encodeFrame(f, "a", "", []byte("NATS/1.0\r\n\r\n"), nil)
	badReply := make([]byte, FrameSize("bar", "r y", 0))
	if _, err := PutCheckedFrame(badReply, "bar", "r y", 0); err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][3][]byte{
		{a, encodeFrame(f, "foo.bar", "", nil, []byte("another body")), a},
		{a, encodeFrame(f, "foo.bar", "", []byte("NATS/1.0\r\n\r\n"), []byte("x")), a},
		{a, encodeFrame(f, "foo.baz", "", nil, nil), a},
		{a, pre, append(append([]byte{}, pre...), 0xff)},
		{encodeFrame(f, "a", "_INBOX.1", []byte("NATS/1.0\r\n\r\n"), nil), encodeFrame(f, "a", "_INBOX.1", []byte("NATS/1.0\r\n\r\n"), []byte("z")), nil},
		{h, h[:len(h)-1], h}, // same prefix, header block longer than the body left
		{a, badReply, a},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, p1, p2, p3 []byte) {
		var c FrameCache
		for i, p := range [][]byte{p1, p2, p3} {
			// Body, the fast path alone, may only say yes to a frame
			// ParseFrame accepts with the cached subjects and no header.
			if b, ok := c.Body(p); ok {
				w, werr := ParseFrame(p)
				if werr != nil || w.Subject != c.Subject || w.Reply != c.Reply || w.HdrLen != 0 || !bytes.Equal(w.Body, b) {
					t.Fatalf("payload %d: Body %q for a frame ParseFrame reads as %+v %v (cache %q %q)", i, b, w, werr, c.Subject, c.Reply)
				}
			}
			var g Frame
			err := c.Parse(p, &g)
			w, werr := ParseFrame(p)
			if (werr == nil) != (err == nil) || (werr == nil && !sameFrame(w, g)) {
				t.Fatalf("payload %d: Parse %+v %v, ParseFrame %+v %v", i, g, err, w, werr)
			}
			if err != nil && !errors.Is(err, ErrBadFrame) {
				t.Fatalf("payload %d: error %v does not wrap ErrBadFrame", i, err)
			}
			if err == nil && len(g.Body) > 0 && unsafe.SliceData(g.Body) != &p[len(p)-len(g.Body)] {
				t.Fatalf("payload %d: Body is not the payload's tail", i)
			}
		}
	})
}

// TestFrameCacheRejectedFrameLeavesCache: a full parse that accepts a new
// subject and then rejects the reply leaves the cache as it was: the next
// frame with the old prefix keeps its own subject.
func TestFrameCacheRejectedFrameLeavesCache(t *testing.T) {
	var c FrameCache
	var f Frame
	a := encodeFrame(t, "foo", "", nil, []byte("x"))
	if err := c.Parse(a, &f); err != nil || f.Subject != "foo" {
		t.Fatal(f, err)
	}
	p := make([]byte, FrameSize("bar", "r y", 0)) // valid subject, reply with a space
	if _, err := PutCheckedFrame(p, "bar", "r y", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Parse(p, &f); err == nil {
		t.Fatal("bad reply accepted")
	}
	if err := c.Parse(a, &f); err != nil || f.Subject != "foo" {
		t.Fatalf("payload with subject foo parsed as %q, %v", f.Subject, err)
	}
}

func sameFrame(a, b Frame) bool {
	return a.Subject == b.Subject && a.Reply == b.Reply && a.HdrLen == b.HdrLen && bytes.Equal(a.Body, b.Body) && len(a.Body) == len(b.Body)
}
