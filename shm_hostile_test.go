//go:build linux

package switchboard_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"switchboard"
)

// TestShmHostilePublisher: a real process gets a ring from the hub the
// proper way (raw protocol, descriptors by recvmsg, mapped writable and
// sealed), then writes random bytes and forged frames into it for 10 s
// (SB_SHM_HOSTILE overrides). Meanwhile a shared-memory subscriber and a
// TCP subscriber (served by the hub's forwarder) read that channel, and an
// honest publisher streams to its own subscriber. Nothing may panic, the
// readers may only ever see validated messages on the hostile subject, the
// honest channel must lose nothing, and the hostile ring must be reclaimed
// when the process is killed.
func TestShmHostilePublisher(t *testing.T) {
	d := 10 * time.Second
	if v := os.Getenv("SB_SHM_HOSTILE"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	sh := startShmHub(t, 64<<10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Readers of the hostile channel.
	shmSub := shmConnect(t, sh.unix, &switchboard.Options{ShmDrop: true})
	tcpSub := shmConnect(t, sh.tcp, nil)
	hs, err := shmSub.SubscribeSync("hostile.x")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tcpSub.SubscribeSync("hostile.x")
	if err != nil {
		t.Fatal(err)
	}
	shmSub.Flush(ctx)
	tcpSub.Flush(ctx)
	var seen, views atomic.Int64
	var wg sync.WaitGroup
	bad := make(chan string, 4)
	read := func(name string, next func() (string, bool, error)) {
		defer wg.Done()
		for {
			subj, view, err := next()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue // ErrSlowConsumer with the count: expected here
			}
			seen.Add(1)
			if view {
				views.Add(1)
			}
			if subj != "hostile.x" {
				select {
				case bad <- fmt.Sprintf("%s got a message on %q", name, subj):
				default:
				}
			}
		}
	}
	wg.Add(2)
	go read("shm subscriber", func() (string, bool, error) {
		v, err := hs.NextView(ctx)
		if err != nil {
			return "", false, err
		}
		subj := v.Subject
		_ = append([]byte(nil), v.Data...) // read it all, as a renderer would
		v.Release()
		return subj, true, nil
	})
	go read("TCP subscriber", func() (string, bool, error) {
		m, err := ts.NextMsg(ctx)
		if err != nil {
			return "", false, err
		}
		return m.Subject, false, nil
	})

	// The hostile process.
	child := exec.Command(os.Args[0], "-test.run=^TestShmHostileHelper$")
	child.Env = append(os.Environ(), "SB_SHM_HOSTILE_SOCKET="+sh.socketPath, "SB_SHM_HOSTILE_FOR="+d.String())
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "SCRIBBLING" {
		child.Wait()
		t.Fatalf("hostile child: %q", lines.Text())
	}

	// An honest channel carries on through it all.
	good := shmConnect(t, sh.unix, nil)
	gp := shmConnect(t, sh.unix, nil)
	gs, err := good.SubscribeSync("good.y")
	if err != nil {
		t.Fatal(err)
	}
	good.Flush(ctx)
	const n = 2000 // paced over the scribbling
	errs := make(chan error, 1)
	go func() { errs <- readSeq(gs, n) }()
	buf := make([]byte, 8)
	pace := d / n
	for i := range n {
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := gp.Publish("good.y", buf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(pace)
	}
	if err := <-errs; err != nil {
		t.Fatalf("the honest channel: %v", err)
	}
	if switchboard.ShmOut(gp) == 0 {
		t.Fatal("the honest channel did not use shared memory")
	}

	if l, err := gp.Request(ctx, "$SB.SHM.LIST", nil); err == nil {
		t.Logf("channels: %s", l.Data)
	}
	for lines.Scan() {
		t.Logf("hostile child: %s", lines.Text())
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("hostile child: %v", err)
	}
	waitFor(t, "the hostile ring reclaimed", func() bool { return sh.h.Stats().ShmRings == 1 }) // the honest one is left
	cancel()
	wg.Wait()
	select {
	case b := <-bad:
		t.Fatal(b)
	default:
	}
	st := sh.h.Stats()
	if st.ShmBad == 0 || seen.Load() == 0 {
		t.Errorf("the readers never met the hostile ring's frames: %d taken, %d rejected by the forwarder", seen.Load(), st.ShmBad)
	}
	t.Logf("readers took %d hostile messages (%d in place); the forwarder dropped %d bad ones; shm subscriber lost %d, TCP subscriber lost %d",
		seen.Load(), views.Load(), st.ShmBad, hs.Dropped(), ts.Dropped())
}

// TestShmHostileHelper is the hostile process of TestShmHostilePublisher.
func TestShmHostileHelper(t *testing.T) {
	sock := os.Getenv("SB_SHM_HOSTILE_SOCKET")
	if sock == "" {
		t.Skip("the hostile process of TestShmHostilePublisher")
	}
	d, err := time.ParseDuration(os.Getenv("SB_SHM_HOSTILE_FOR"))
	if err != nil {
		t.Fatal(err)
	}
	nc, ring, send := rawShmPublisher(t, sock, "hostile.x")
	defer nc.Close()
	defer unix.Munmap(ring)
	fmt.Println("SCRIBBLING")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	// First a ring of malformed frames only, then one of well-formed
	// ones, each with time to read it: the forwarder must meet bad frames
	// and the readers take good ones, however the random rounds go.
	forgeSlots(ring, rng, []string{"other", "", "a b", "hostile.x.y"}, false)
	wakeRing(ring)
	time.Sleep(50 * time.Millisecond)
	forgeSlots(ring, rng, []string{"hostile.x"}, true)
	wakeRing(ring)
	time.Sleep(50 * time.Millisecond)
	rounds := 0
	for end := time.Now().Add(d); time.Now().Before(end); rounds++ {
		scribbleRing(ring, rng)
		if rounds%16 == 0 {
			send("PING\r\n") // keep the connection busy too
			wakeRing(ring)
			time.Sleep(200 * time.Microsecond) // let the readers take some
		}
	}
	fmt.Printf("%d rounds of scribbling\n", rounds)
}

// rawShmPublisher connects to the hub's unix socket at sock with the raw
// protocol, as any peer could, asks for a ring on subj (64 slots of 4 KiB),
// maps it writable, seals it and waits until the hub says it is ready.
func rawShmPublisher(t *testing.T, sock, subj string) (uc *net.UnixConn, ring []byte, send func(string)) {
	c := helloRawShm(t, sock)
	c.shm("PUB", map[string]any{"subject": subj, "slots": 64, "slot_size": 4096})
	for {
		op, m, fds, ok := c.next(time.Minute)
		if !ok {
			t.Fatal("the hub did not say the ring is ready")
		}
		switch op {
		case "ring":
			if m.Error != "" || len(fds) < 2 {
				t.Fatalf("no ring: %+v, %d fds", m, len(fds))
			}
			size, _ := unix.Seek(fds[0], 0, 2)
			var err error
			ring, err = unix.Mmap(fds[0], 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err != nil {
				t.Fatal(err)
			}
			unix.FcntlInt(uintptr(fds[0]), unix.F_ADD_SEALS, unix.F_SEAL_FUTURE_WRITE)
			unix.FcntlInt(uintptr(fds[0]), unix.F_ADD_SEALS, unix.F_SEAL_SEAL)
			c.shm("SEALED", map[string]uint64{"ring": m.Ring})
		case "ready":
			return c.uc, ring, c.send
		}
	}
}

// Offsets of the ring layout (docs/shm.md), written here by hand as a
// hostile peer would.
const (
	hOffSlotSeq = 64 // slots begun
	hOffFutex   = 192
	hHeader     = 256
)

// scribbleRing does one round of damage: random bytes anywhere, forged
// slots that look complete (sequence words around the slot sequence,
// records of random lengths), frames with subjects outside the pattern or
// a $SB. reply, and a moving slot sequence. (It leaves the closed flag alone: readers
// would stop reading at once.)
func scribbleRing(ring []byte, rng *rand.Rand) {
	le := binary.LittleEndian
	switch rng.IntN(5) {
	case 0:
		for range 256 {
			le.PutUint64(ring[rng.IntN(len(ring)-7):], rng.Uint64())
		}
	case 1, 2, 3:
		forgeSlots(ring, rng, []string{"hostile.x", "hostile.x", "hostile.x", "good.y", "other", "", "a b", "hostile.x.y"}, false)
	case 4:
		le.PutUint64(ring[hOffSlotSeq:], []uint64{0, ^uint64(0), rng.Uint64(), le.Uint64(ring[hOffSlotSeq:]) + 1000}[rng.IntN(4)])
	}
}

// forgeSlots writes a whole ring of full-looking slots just below a new
// slot sequence, each with one record (a frame on a subject drawn from
// subjects) and an end word: readers take them and must check every
// frame.
func forgeSlots(ring []byte, rng *rand.Rand, subjects []string, clean bool) {
	le := binary.LittleEndian
	stride := int(le.Uint32(ring[20:])) // may be garbage by now
	if stride < 64 || stride > len(ring) {
		stride = 64 * ((4096 + 1024 + 16 + 16 + 63) / 64)
	}
	const slots = 64
	w := le.Uint64(ring[hOffSlotSeq:]) + slots
	for i := range uint64(slots) {
		s := w - slots + i
		off := hHeader + int(s%slots)*stride
		if off+stride > len(ring) {
			continue
		}
		subj := subjects[rng.IntN(len(subjects))]
		reply := []string{"", "$SB.SHM.PUB", "_INBOX.z", "bad reply"}[rng.IntN(4)]
		hdr, reserved, n := uint32(rng.IntN(4)/3)*rng.Uint32N(64), uint32(rng.IntN(8)/7), rng.Uint32N(uint32(stride)+64)
		if clean {
			// A well-formed frame: no reply, no header block, 8 bytes of data.
			reply, hdr, reserved, n = "", 0, 0, uint32(12+len(subj)+8)
		}
		p := ring[off+24:]
		le.PutUint16(p[0:], uint16(len(subj)))
		le.PutUint16(p[2:], uint16(len(reply)))
		le.PutUint32(p[4:], hdr)      // mostly no header block
		le.PutUint32(p[8:], reserved) // mostly the zero it must be
		copy(p[12:], subj)
		copy(p[12+len(subj):], reply)
		// The record word (valid, the slot's tag, the length), the end
		// word after the record, the slot's first message, "full".
		tag := 1<<63 | (s&(1<<28-1))<<32
		le.PutUint64(ring[off+16:], tag|uint64(n))
		if end := off + 16 + 8 + (int(n)+7)&^7; end+8 <= off+stride {
			le.PutUint64(ring[end:], tag|1<<62)
		}
		le.PutUint64(ring[off+8:], s)
		le.PutUint64(ring[off:], 2*s+2)
	}
	le.PutUint64(ring[hOffSlotSeq:], w)
}

// wakeRing bumps the ring's futex word and wakes its sleepers.
func wakeRing(ring []byte) {
	le := binary.LittleEndian
	le.PutUint32(ring[hOffFutex:], le.Uint32(ring[hOffFutex:])+2)
	addr := &ring[hOffFutex]
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), 1 /* FUTEX_WAKE */, 1<<30, 0, 0, 0)
}
