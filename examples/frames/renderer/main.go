// Command renderer is a toy preview renderer: it takes the editor's frames
// from "video.preview.frames", checks each one, and prints what it got
// once a second and when it stops: after the editor's last frame (with
// -frames N, frame N-1) or on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"switchboard"
	"switchboard/examples/frames"
)

// tally counts what the renderer saw.
type tally struct {
	received   int   // intact frames
	missing    int   // frame numbers skipped between the first and the last
	outOfOrder int   // frames numbered at or below one already seen
	corrupt    int   // frames of the wrong size or pattern
	first      int64 // first frame number seen, -1 before any
	last       int64 // highest frame number seen, -1 before any
}

func (t *tally) add(data []byte) {
	n, err := frames.Check(data)
	if err == nil && len(data) != frames.Size {
		err = fmt.Errorf("frame %d is %d bytes, want %d", n, len(data), frames.Size)
	}
	if err == nil && n > 1<<62 {
		err = fmt.Errorf("frame number %d is out of range", n)
	}
	if err != nil {
		t.corrupt++
		if t.corrupt <= 5 {
			log.Print(err)
		}
		return
	}
	t.received++
	num := int64(n)
	switch {
	case t.last < 0:
		t.first = num
	case num <= t.last:
		t.outOfOrder++
		if t.outOfOrder <= 5 {
			log.Printf("frame %d after frame %d", num, t.last)
		}
		return
	case num > t.last+1:
		t.missing += int(num - t.last - 1)
	}
	t.last = num
}

func main() {
	server := flag.String("server", "", "hub URL (default $SWITCHBOARD_URL or the default socket)")
	want := flag.Int("frames", 0, "exit after frame N-1, the last of an editor run with -frames N (0: run until interrupted)")
	drop := flag.Bool("drop", false, "let the editor overwrite frames this renderer has not read yet, instead of waiting for it")
	flag.Parse()
	log.SetPrefix("renderer: ")
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// On a unix socket the subscription reads the editor's ring directly.
	// By default the editor waits for it when it falls a whole ring behind;
	// ShmDrop lets the editor overwrite frames it has not read instead.
	nc, err := switchboard.Connect(ctx, *server, &switchboard.Options{
		Name:    "renderer",
		ShmDrop: *drop,
		DisconnectHandler: func(_ *switchboard.Conn, err error) {
			log.Printf("lost the hub (%v): frames sent until the connection is back are lost", err)
		},
		ReconnectHandler: func(*switchboard.Conn) { log.Print("back with the hub") },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	// A SubscribeSync subscription reads a ring in NextMsg itself: no
	// queue in between, so a blocking renderer holds the editor back
	// exactly as much as it is behind.
	sub, err := nc.SubscribeSync(frames.Subject)
	if err != nil {
		log.Fatal(err)
	}
	if err := nc.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")

	t := tally{first: -1, last: -1}
	summary := func(prefix string) {
		fmt.Printf("renderer: %s%d frames received, first %d, last %d, %d missing, %d dropped, %d out of order, %d corrupt\n",
			prefix, t.received, t.first, t.last, t.missing, sub.Dropped(), t.outOfOrder, t.corrupt)
	}
	next := time.Now().Add(time.Second)
	lastReceived := 0
	for {
		mctx, cancel := context.WithDeadline(ctx, next)
		m, err := sub.NextMsg(mctx)
		cancel()
		switch {
		case err == nil:
			t.add(m.Data)
		case ctx.Err() != nil:
			summary("done: ")
			return
		case errors.Is(err, switchboard.ErrSlowConsumer):
			// Frames were overwritten before this renderer read them;
			// sub.Dropped() counts them.
		case errors.Is(err, switchboard.ErrTimeout):
		default:
			log.Fatal(err)
		}
		if now := time.Now(); !now.Before(next) {
			summary(fmt.Sprintf("%d fps; ", t.received-lastReceived))
			lastReceived = t.received
			next = now.Add(time.Second)
		}
		if *want > 0 && t.last >= int64(*want-1) {
			summary("done: ")
			return
		}
	}
}
