package frames

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchboard/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

func TestPattern(t *testing.T) {
	buf := make([]byte, Size)
	for _, n := range []uint64{0, 1, 59, 1 << 40} {
		Paint(buf, n)
		if got, err := Check(buf); err != nil || got != n {
			t.Fatalf("frame %d reads back as %d, %v", n, got, err)
		}
	}
	Paint(buf, 7)
	buf[3*sampleEvery]++
	if _, err := Check(buf); err == nil {
		t.Fatal("a changed sample byte went unnoticed")
	}
	Paint(buf, 7)
	Paint(buf[:8], 8) // a frame number whose samples were not written
	if _, err := Check(buf); err == nil {
		t.Fatal("a stale frame went unnoticed")
	}
	if _, err := Check(buf[:7]); err == nil {
		t.Fatal("a 7-byte frame was accepted")
	}
}

// TestEditorToRenderer runs the hub, the renderer and the editor as three
// processes: 60 frames of 4 MiB go through shared memory, and (the
// renderer blocking, the default) none may be lost.
func TestEditorToRenderer(t *testing.T) {
	const n = 60
	sb := proctest.Build(t, "switchboard/cmd/switchboard")
	editorBin := proctest.Build(t, "switchboard/examples/frames/editor")
	rendererBin := proctest.Build(t, "switchboard/examples/frames/renderer")

	dir := t.TempDir()
	sock := filepath.Join(dir, "hub.sock")
	env := []string{proctest.Env("SWITCHBOARD_URL", "unix://"+sock)}
	hub := proctest.Start(t, nil, sb, "serve", "--socket", sock, "--listen", "", "--data", filepath.Join(dir, "data"),
		"--max-payload", "8MiB")
	proctest.WaitForSocket(t, sock, 10*time.Second)

	renderer := proctest.Start(t, env, rendererBin, "-frames", fmt.Sprint(n))
	if l := renderer.Line(10 * time.Second); l != "ready" {
		t.Fatalf("renderer printed %q; output:\n%s", l, renderer.Output())
	}
	editor := proctest.Start(t, env, editorBin, "-frames", fmt.Sprint(n), "-fps", "0")
	if code := editor.Wait(15 * time.Second); code != 0 {
		t.Fatalf("editor exited %d; output:\n%s", code, editor.Output())
	}
	out := editor.Output()
	if !strings.Contains(out, "through a shared-memory ring") ||
		!strings.Contains(out, fmt.Sprintf("sent %d frames of %d bytes", n, Size)) ||
		!strings.Contains(out, fmt.Sprintf("shared memory: yes (%d frames through the ring)", n)) {
		t.Fatalf("editor did not send every frame through shared memory; output:\n%s", out)
	}

	var got, first, last, missing, dropped, outOfOrder, corrupt int
	for {
		l := renderer.Line(15 * time.Second)
		rest, ok := strings.CutPrefix(l, "renderer: done: ")
		if !ok {
			continue // a once-a-second summary
		}
		if _, err := fmt.Sscanf(rest, "%d frames received, first %d, last %d, %d missing, %d dropped, %d out of order, %d corrupt",
			&got, &first, &last, &missing, &dropped, &outOfOrder, &corrupt); err != nil {
			t.Fatalf("renderer summary %q: %v", l, err)
		}
		break
	}
	if got != n || first != 0 || last != n-1 || missing != 0 || dropped != 0 || outOfOrder != 0 || corrupt != 0 {
		t.Fatalf("renderer got %d intact frames (%d..%d, %d missing, %d dropped, %d out of order, %d corrupt), want %d in order; output:\n%s",
			got, first, last, missing, dropped, outOfOrder, corrupt, n, renderer.Output())
	}
	if code := renderer.Wait(10 * time.Second); code != 0 {
		t.Fatalf("renderer exited %d; output:\n%s", code, renderer.Output())
	}

	hub.Signal(syscall.SIGTERM)
	if code := hub.Wait(15 * time.Second); code != 0 {
		t.Fatalf("hub exited %d after SIGTERM; output:\n%s", code, hub.Output())
	}
}
