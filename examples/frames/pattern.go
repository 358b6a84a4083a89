package frames

import (
	"encoding/binary"
	"fmt"
)

const (
	// Subject is where the editor publishes its frames.
	Subject = "video.preview.frames"
	// Size is the size of one frame: 1024×1024 pixels of 4 bytes.
	Size = 4 << 20
	// Slots is how many frames the editor's ring holds.
	Slots = 4

	// sampleEvery is the distance between the pattern's bytes: one per
	// 4 KiB page.
	sampleEvery = 4096
)

// sample is the pattern's byte at offset off of frame n.
func sample(n uint64, off int) byte {
	return byte(n*131 + uint64(off/sampleEvery)*29 + 7)
}

// Paint renders frame n into buf: the frame number in the first 8 bytes
// (little-endian), then one byte derived from n and the offset every
// 4 KiB, and in the last byte. A real editor would write every pixel; the
// pattern is enough to tell frames apart and to see a torn or stale one.
func Paint(buf []byte, n uint64) {
	if len(buf) < 8 {
		return
	}
	binary.LittleEndian.PutUint64(buf, n)
	for off := sampleEvery; off < len(buf); off += sampleEvery {
		buf[off] = sample(n, off)
	}
	if last := len(buf) - 1; last >= 8 {
		buf[last] = sample(n, last)
	}
}

// Check returns the number of the frame in buf and an error if buf is not
// exactly what Paint wrote for that number (in the bytes Paint writes).
func Check(buf []byte) (uint64, error) {
	if len(buf) < 8 {
		return 0, fmt.Errorf("frame of %d bytes: too short for a frame number", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf)
	for off := sampleEvery; off < len(buf); off += sampleEvery {
		if got, want := buf[off], sample(n, off); got != want {
			return n, fmt.Errorf("frame %d: byte %d is %#x, want %#x", n, off, got, want)
		}
	}
	if last := len(buf) - 1; last >= 8 {
		if got, want := buf[last], sample(n, last); got != want {
			return n, fmt.Errorf("frame %d: last byte is %#x, want %#x", n, got, want)
		}
	}
	return n, nil
}
