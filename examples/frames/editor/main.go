// Command editor is a toy video editor: it renders frames of 4 MiB and
// hands them to the preview renderer on "video.preview.frames" through a
// shared-memory ring, writing each frame straight into the ring (zero
// copy). Without shared memory (a TCP hub URL, -no-shm) the same code
// sends the frames over the socket.
package main

import (
	"context"
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

func main() {
	server := flag.String("server", "", "hub URL (default $SWITCHBOARD_URL or the default socket)")
	count := flag.Int("frames", 120, "number of frames to send")
	fps := flag.Float64("fps", 60, "frames per second (0: as fast as possible)")
	noShm := flag.Bool("no-shm", false, "send the frames over the socket, not through shared memory")
	flag.Parse()
	log.SetPrefix("editor: ")
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, err := switchboard.Connect(ctx, *server, &switchboard.Options{Name: "editor", NoSharedMemory: *noShm})
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	// The hub hands out a ring of Slots frames for Subject, whether or not
	// a renderer runs yet; a renderer that subscribes later reads the
	// frames sent from then on.
	pub, err := nc.NewPublisher(ctx, frames.Subject, &switchboard.RingOptions{Slots: frames.Slots, SlotSize: frames.Size})
	if err != nil {
		log.Fatal(err)
	}
	if pub.Shared() {
		fmt.Printf("editor: publishing on %s through a shared-memory ring of %d slots of %d bytes\n", frames.Subject, frames.Slots, frames.Size)
	} else {
		if limit := nc.MaxPayload(); limit < frames.Size {
			log.Fatalf("no shared memory, and the hub takes messages of at most %d bytes, not %d: start it with --max-payload 8MiB", limit, frames.Size)
		}
		fmt.Printf("editor: publishing on %s over the socket (no shared memory)\n", frames.Subject)
	}

	var interval time.Duration
	if *fps > 0 {
		interval = time.Duration(float64(time.Second) / *fps)
	}
	pace := time.NewTimer(0)
	defer pace.Stop()
	start := time.Now()
	sent, viaRing := 0, 0
	for i := 0; i < *count; i++ {
		if interval > 0 {
			// Frame i is due at start + i×interval; a late frame goes at
			// once, without piling up.
			pace.Reset(time.Until(start.Add(time.Duration(i) * interval)))
			select {
			case <-pace.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		shared := pub.Shared()
		// With a ring, buf is the ring's next slot: render into it, then
		// Send publishes it. (Nothing else may publish on pub in between.)
		// A renderer that has not read the frame this slot held makes
		// Loan wait for it (unless it asked to drop, -drop).
		buf, err := pub.Loan(frames.Size)
		if err != nil {
			log.Fatal(err)
		}
		frames.Paint(buf, uint64(i))
		if err := pub.Send(frames.Size); err != nil {
			log.Fatal(err)
		}
		sent++
		if shared {
			viaRing++
		}
	}
	elapsed := time.Since(start)

	// Frames sent over the socket may still be buffered.
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nc.Flush(fctx); err != nil {
		log.Print("flush: ", err)
	}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(sent) / elapsed.Seconds()
	}
	yes := "no"
	if viaRing > 0 {
		yes = "yes"
	}
	fmt.Printf("editor: sent %d frames of %d bytes in %v (%.1f fps); shared memory: %s (%d frames through the ring)\n",
		sent, frames.Size, elapsed.Round(time.Millisecond), rate, yes, viaRing)
}
