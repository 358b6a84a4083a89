package webdb

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchboard/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWebAsksDatabase runs the hub, the database and the web server as
// three processes and drives the web server over HTTP.
func TestWebAsksDatabase(t *testing.T) {
	sb := proctest.Build(t, "switchboard/cmd/switchboard")
	dbBin := proctest.Build(t, "switchboard/examples/webdb/db")
	webBin := proctest.Build(t, "switchboard/examples/webdb/web")

	dir := t.TempDir()
	sock := filepath.Join(dir, "hub.sock")
	env := []string{proctest.Env("SWITCHBOARD_URL", "unix://"+sock)}
	hub := proctest.Start(t, nil, sb, "serve", "--socket", sock, "--listen", "", "--data", filepath.Join(dir, "data"))
	proctest.WaitForSocket(t, sock, 10*time.Second)

	db := proctest.Start(t, env, dbBin)
	if l := db.Line(10 * time.Second); l != "ready" {
		t.Fatalf("db printed %q", l)
	}
	web := proctest.Start(t, env, webBin, "-addr", "127.0.0.1:0")
	addr, ok := strings.CutPrefix(web.Line(10*time.Second), "listening ")
	if !ok {
		t.Fatalf("web did not report its address; output:\n%s", web.Output())
	}
	base := "http://" + addr

	if code, body := get(t, base+"/user?id=1"); code != 200 || !strings.Contains(body, "Ada Lovelace") {
		t.Fatalf("GET id=1: %d %q", code, body)
	}
	if code, body := get(t, base+"/user?id=9"); code != 200 || !strings.Contains(body, "not found") {
		t.Fatalf("GET id=9: %d %q", code, body)
	}

	// With the database gone, the web server learns it at once (no
	// responders) instead of waiting out its 2 s timeout.
	db.Cmd.Process.Kill()
	db.Wait(10 * time.Second)
	start := time.Now()
	code, body := get(t, base+"/user?id=1")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("GET with no database: %d %q, want 503", code, body)
	}
	if d := time.Since(start); d >= 2*time.Second {
		t.Fatalf("no-responders answer took %v", d)
	}

	web.Signal(syscall.SIGTERM)
	web.Wait(10 * time.Second)
	hub.Signal(syscall.SIGTERM)
	if code := hub.Wait(15 * time.Second); code != 0 {
		t.Fatalf("hub exited %d after SIGTERM; output:\n%s", code, hub.Output())
	}
}
