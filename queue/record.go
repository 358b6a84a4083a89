package queue

import (
	"encoding/binary"
	"fmt"
)

// Record types in a queue's journal. docs/queues.md ("On disk") has the
// byte layout; every field is little endian.
const (
	recMsg       = 1 // a stored message
	recAck       = 2 // a message finished for a group (acked, terminated, dead-lettered)
	recDelivered = 3 // a message's delivery count in a group, written at redelivery
	recFloor     = 4 // every message below a sequence is removed (limits, purge)
	recGroup     = 5 // a Limits consumer's group starts afresh (the consumer was created)
)

// Ack kinds of a recAck record.
const (
	ackDone = 1 // acknowledged by a consumer
	ackTerm = 2 // terminated by a consumer
	ackDead = 3 // moved to the dead-letter queue, or dropped at MaxDeliver
)

// msgRecord is a stored message.
type msgRecord struct {
	At        int64  // publish time, Unix nanoseconds
	NotBefore int64  // earliest delivery, Unix nanoseconds; 0: at once
	Subject   string // the subject it was published to
	MsgID     string // its Msg-Id header, for deduplication
	Header    []byte // the NATS header block ("NATS/1.0\r\n..."), or empty
	Data      []byte
}

// Fixed sizes of the records' fields.
const (
	msgFixed       = 1 + 8 + 8 + 2 + 2 + 4 // type, at, not-before, subject, msg-id and header lengths
	maxSubjectLen  = 1<<16 - 1
	maxMsgIDLen    = 1<<16 - 1
	ackFixed       = 1 + 1 + 8 + 2
	deliveredFixed = 1 + 8 + 4 + 2
	floorFixed     = 1 + 8
	groupFixed     = 1 + 2
)

// appendMsg appends m as a recMsg record to dst.
func appendMsg(dst []byte, m *msgRecord) []byte {
	dst = append(dst, recMsg)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.At))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.NotBefore))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(m.Subject)))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(m.MsgID)))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.Header)))
	dst = append(dst, m.Subject...)
	dst = append(dst, m.MsgID...)
	dst = append(dst, m.Header...)
	return append(dst, m.Data...)
}

// msgSize is the length of m's record.
func msgSize(m *msgRecord) int {
	return msgFixed + len(m.Subject) + len(m.MsgID) + len(m.Header) + len(m.Data)
}

// appendAck appends a recAck record.
func appendAck(dst []byte, kind byte, group string, seq uint64) []byte {
	dst = append(dst, recAck, kind)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(group)))
	return append(dst, group...)
}

// appendDelivered appends a recDelivered record.
func appendDelivered(dst []byte, group string, seq uint64, count uint32) []byte {
	dst = append(dst, recDelivered)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint32(dst, count)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(group)))
	return append(dst, group...)
}

// appendFloor appends a recFloor record.
func appendFloor(dst []byte, seq uint64) []byte {
	dst = append(dst, recFloor)
	return binary.LittleEndian.AppendUint64(dst, seq)
}

// appendGroup appends a recGroup record: acks of group before it belong
// to an earlier consumer of the same name.
func appendGroup(dst []byte, group string) []byte {
	dst = append(dst, recGroup)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(group)))
	return append(dst, group...)
}

// record is one decoded record; which fields are set depends on Type.
type record struct {
	Type  byte
	Msg   msgRecord // recMsg; its slices alias the decoded bytes
	Kind  byte      // recAck
	Group string    // recAck, recDelivered, recGroup
	Seq   uint64    // recAck, recDelivered, recFloor
	Count uint32    // recDelivered
}

// decodeRecord decodes b. The message's Header and Data alias b; Subject,
// MsgID and Group are copies. Every length is checked against b before it
// is used, so garbage gives an error, never a panic or a large allocation.
func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) == 0 {
		return r, fmt.Errorf("%w: empty", ErrBadRecord)
	}
	r.Type = b[0]
	switch r.Type {
	case recMsg:
		if len(b) < msgFixed {
			return r, fmt.Errorf("%w: message record of %d bytes, at least %d", ErrBadRecord, len(b), msgFixed)
		}
		r.Msg.At = int64(binary.LittleEndian.Uint64(b[1:]))
		r.Msg.NotBefore = int64(binary.LittleEndian.Uint64(b[9:]))
		ns := int(binary.LittleEndian.Uint16(b[17:]))
		ni := int(binary.LittleEndian.Uint16(b[19:]))
		nh := uint64(binary.LittleEndian.Uint32(b[21:]))
		rest := b[msgFixed:]
		if uint64(ns)+uint64(ni)+nh > uint64(len(rest)) {
			return r, fmt.Errorf("%w: message record: subject %d + msg-id %d + header %d bytes exceed the %d left", ErrBadRecord, ns, ni, nh, len(rest))
		}
		r.Msg.Subject = string(rest[:ns])
		r.Msg.MsgID = string(rest[ns : ns+ni])
		r.Msg.Header = rest[ns+ni : ns+ni+int(nh) : ns+ni+int(nh)]
		r.Msg.Data = rest[ns+ni+int(nh):]
		if r.Msg.Subject == "" {
			return r, fmt.Errorf("%w: message record without a subject", ErrBadRecord)
		}
	case recAck:
		if len(b) < ackFixed {
			return r, fmt.Errorf("%w: ack record of %d bytes, at least %d", ErrBadRecord, len(b), ackFixed)
		}
		r.Kind = b[1]
		r.Seq = binary.LittleEndian.Uint64(b[2:])
		n := int(binary.LittleEndian.Uint16(b[10:]))
		if len(b) != ackFixed+n {
			return r, fmt.Errorf("%w: ack record of %d bytes for a %d-byte group", ErrBadRecord, len(b), n)
		}
		if r.Kind < ackDone || r.Kind > ackDead {
			return r, fmt.Errorf("%w: ack kind %d", ErrBadRecord, r.Kind)
		}
		r.Group = string(b[ackFixed:])
	case recDelivered:
		if len(b) < deliveredFixed {
			return r, fmt.Errorf("%w: delivered record of %d bytes, at least %d", ErrBadRecord, len(b), deliveredFixed)
		}
		r.Seq = binary.LittleEndian.Uint64(b[1:])
		r.Count = binary.LittleEndian.Uint32(b[9:])
		n := int(binary.LittleEndian.Uint16(b[13:]))
		if len(b) != deliveredFixed+n {
			return r, fmt.Errorf("%w: delivered record of %d bytes for a %d-byte group", ErrBadRecord, len(b), n)
		}
		r.Group = string(b[deliveredFixed:])
	case recGroup:
		if len(b) < groupFixed {
			return r, fmt.Errorf("%w: group record of %d bytes, at least %d", ErrBadRecord, len(b), groupFixed)
		}
		n := int(binary.LittleEndian.Uint16(b[1:]))
		if len(b) != groupFixed+n || n == 0 {
			return r, fmt.Errorf("%w: group record of %d bytes for a %d-byte group", ErrBadRecord, len(b), n)
		}
		r.Group = string(b[groupFixed:])
	case recFloor:
		if len(b) != floorFixed {
			return r, fmt.Errorf("%w: floor record of %d bytes, want %d", ErrBadRecord, len(b), floorFixed)
		}
		r.Seq = binary.LittleEndian.Uint64(b[1:])
	default:
		return r, fmt.Errorf("%w: unknown type %d", ErrBadRecord, r.Type)
	}
	return r, nil
}
