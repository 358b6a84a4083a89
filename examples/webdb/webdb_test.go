package webdb

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchboard"
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
	// responders) instead of waiting out its 2 s timeout. A request that
	// reaches the hub before it has noticed the death is lost like any
	// message to a process that just died (CI once hit that window), so
	// first wait until the hub answers "no responders" to a probe.
	db.Cmd.Process.Kill()
	db.Wait(10 * time.Second)
	waitNoResponders(t, "unix://"+sock, "db.user.get")
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

// waitNoResponders sends probe requests on subj until the hub answers that
// nobody is subscribed.
func waitNoResponders(t *testing.T, url, subj string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := switchboard.Connect(ctx, url, &switchboard.Options{Name: "probe", NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := nc.Request(rctx, subj, []byte(`{"id":0}`))
		rcancel()
		if errors.Is(err, switchboard.ErrNoResponders) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the hub still routes %s 10 s after the database died: %v", subj, err)
		}
	}
}
