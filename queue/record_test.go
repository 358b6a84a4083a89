package queue

import (
	"bytes"
	"errors"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	m := msgRecord{At: 123, NotBefore: 456, Subject: "jobs.a", MsgID: "id", Header: []byte("NATS/1.0\r\nK: v\r\n\r\n"), Data: []byte("data")}
	r, err := decodeRecord(appendMsg(nil, &m))
	if err != nil || r.Type != recMsg || r.Msg.At != 123 || r.Msg.NotBefore != 456 || r.Msg.Subject != "jobs.a" || r.Msg.MsgID != "id" ||
		!bytes.Equal(r.Msg.Header, m.Header) || !bytes.Equal(r.Msg.Data, m.Data) || msgSize(&m) != len(appendMsg(nil, &m)) {
		t.Fatalf("message: %+v %v", r, err)
	}
	if r, err := decodeRecord(appendAck(nil, ackTerm, "g", 9)); err != nil || r.Type != recAck || r.Kind != ackTerm || r.Group != "g" || r.Seq != 9 {
		t.Fatalf("ack: %+v %v", r, err)
	}
	if r, err := decodeRecord(appendDelivered(nil, "", 7, 3)); err != nil || r.Type != recDelivered || r.Seq != 7 || r.Count != 3 {
		t.Fatalf("delivered: %+v %v", r, err)
	}
	if r, err := decodeRecord(appendFloor(nil, 42)); err != nil || r.Type != recFloor || r.Seq != 42 {
		t.Fatalf("floor: %+v %v", r, err)
	}
	if r, err := decodeRecord(appendGroup(nil, "c1")); err != nil || r.Type != recGroup || r.Group != "c1" {
		t.Fatalf("group: %+v %v", r, err)
	}
	for _, b := range [][]byte{nil, {9}, {recMsg, 1, 2}, {recAck, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, appendFloor(nil, 1)[:5],
		append(appendAck(nil, ackDone, "g", 1), 'x'), appendMsg(nil, &msgRecord{Data: []byte("no subject")})} {
		if _, err := decodeRecord(b); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%q: %v, want ErrBadRecord", b, err)
		}
	}
	// A message record whose lengths claim more than it holds.
	b := appendMsg(nil, &m)
	b[21] = 0xff
	if _, err := decodeRecord(b); !errors.Is(err, ErrBadRecord) {
		t.Errorf("oversized header length: %v", err)
	}
}

// FuzzDecodeRecord: any bytes decode to a record or ErrBadRecord, never a
// panic; a decoded record encodes back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendMsg(nil, &msgRecord{At: 1, Subject: "a", MsgID: "m", Header: []byte("NATS/1.0\r\n\r\n"), Data: []byte("x")}))
	f.Add(appendAck(nil, ackDone, "", 5))
	f.Add(appendDelivered(nil, "c", 5, 2))
	f.Add(appendFloor(nil, 3))
	f.Add(appendGroup(nil, "c"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v is not ErrBadRecord", err)
			}
			return
		}
		var again []byte
		switch r.Type {
		case recMsg:
			again = appendMsg(nil, &r.Msg)
		case recAck:
			again = appendAck(nil, r.Kind, r.Group, r.Seq)
		case recDelivered:
			again = appendDelivered(nil, r.Group, r.Seq, r.Count)
		case recFloor:
			again = appendFloor(nil, r.Seq)
		case recGroup:
			again = appendGroup(nil, r.Group)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("%q decoded to %+v, which encodes to %q", b, r, again)
		}
	})
}
