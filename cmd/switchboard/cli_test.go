package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchboard/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// cliHub starts `switchboard serve` on a private socket and returns the
// binary and the environment that points clients at it.
func cliHub(t *testing.T, extra ...string) (bin string, env []string, hub *proctest.Proc) {
	t.Helper()
	bin = proctest.Build(t, "switchboard/cmd/switchboard")
	dir := t.TempDir()
	sock := filepath.Join(dir, "hub.sock")
	args := append([]string{"serve", "--socket", sock, "--listen", "", "--data", filepath.Join(dir, "data")}, extra...)
	hub = proctest.Start(t, nil, bin, args...)
	proctest.WaitForSocket(t, sock, 10*time.Second)
	return bin, []string{"SWITCHBOARD_URL=unix://" + sock}, hub
}

// runCLI runs the binary to completion and returns stdout, stderr and the
// exit code.
func runCLI(t *testing.T, env []string, stdin string, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%v did not finish", args)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func TestPipeStdinThroughTheBus(t *testing.T) {
	bin, env, _ := cliHub(t)
	sub := proctest.Start(t, env, bin, "sub", "lines", "--count", "3", "--raw")
	sub.WaitOutput("subscribed to lines", 10*time.Second)
	if _, stderr, code := runCLI(t, env, "one\ntwo\nthree\n", bin, "pub", "lines"); code != 0 {
		t.Fatalf("pub exit %d: %s", code, stderr)
	}
	for _, want := range []string{"one", "two", "three"} {
		if got := sub.Line(10 * time.Second); got != want {
			t.Fatalf("sub printed %q, want %q", got, want)
		}
	}
	if code := sub.Wait(10 * time.Second); code != 0 {
		t.Fatalf("sub exit %d", code)
	}
}

func TestSubFormatsSubjects(t *testing.T) {
	bin, env, _ := cliHub(t)
	sub := proctest.Start(t, env, bin, "sub", "a.*", "--count", "1")
	sub.WaitOutput("subscribed to a.*", 10*time.Second)
	runCLI(t, env, "", bin, "pub", "a.b", "hello")
	if got := sub.Line(10 * time.Second); got != "[a.b] hello" {
		t.Fatalf("sub printed %q", got)
	}
}

func TestReqReply(t *testing.T) {
	bin, env, _ := cliHub(t)
	echo := proctest.Start(t, env, bin, "reply", "echo")
	upper := proctest.Start(t, env, bin, "reply", "upper", "--command", "tr a-z A-Z")
	echo.WaitOutput("answering requests on echo", 10*time.Second)
	upper.WaitOutput("answering requests on upper", 10*time.Second)
	if out, stderr, code := runCLI(t, env, "", bin, "req", "echo", "ping"); code != 0 || out != "ping\n" {
		t.Fatalf("req echo: %q %q exit %d", out, stderr, code)
	}
	if out, stderr, code := runCLI(t, env, "", bin, "req", "upper", "shout"); code != 0 || out != "SHOUT\n" {
		t.Fatalf("req upper: %q %q exit %d", out, stderr, code)
	}
	_, stderr, code := runCLI(t, env, "", bin, "req", "nobody", "x", "--timeout", "5s")
	if code != 1 || !strings.Contains(stderr, "no responders") {
		t.Fatalf("req to nobody: exit %d, stderr %q", code, stderr)
	}
	for _, p := range []*proctest.Proc{echo, upper} {
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(10 * time.Second); code != 0 {
			t.Fatalf("reply exit %d: %s", code, p.Output())
		}
	}
}

func TestServeStopsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		_, _, hub := cliHub(t)
		hub.Signal(sig)
		if code := hub.Wait(15 * time.Second); code != 0 {
			t.Fatalf("serve exit %d after %v; output:\n%s", code, sig, hub.Output())
		}
	}
}

func TestServeConfigErrors(t *testing.T) {
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	sock := filepath.Join(dir, "s.sock")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--config", write("a.toml", "max_payload = 10\nbogus = 1\n")}, `unknown key "bogus"`},
		{"bad size", []string{"--config", write("b.toml", "max_payload = \"lots\"\n")}, "max_payload"},
		{"bad duration", []string{"--config", write("c.toml", "write_deadline = \"soon\"\n")}, "write_deadline"},
		{"syntax", []string{"--config", write("d.toml", "max_payload = = 1\n")}, "line 1"},
		{"out of range", []string{"--max-payload", "1GiB"}, "max_payload"},
		{"bad mode", []string{"--socket-mode", "999"}, "socket-mode"},
		{"bad log format", []string{"--log-format", "xml"}, "log_format"},
		{"unknown flag", []string{"--nope"}, "unknown flag"},
		{"missing file", []string{"--config", filepath.Join(dir, "missing.toml")}, "missing.toml"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			args := append([]string{"serve", "--socket", sock, "--listen", ""}, tc.args...)
			_, stderr, code := runCLI(t, nil, "", bin, args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, stderr)
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n"); lines != 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("stderr %q: want one line mentioning %q", stderr, tc.want)
			}
		})
	}
}

func TestConfigFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hub.toml")
	sockFromFile := filepath.Join(dir, "file.sock")
	os.WriteFile(cfg, []byte("socket = \""+sockFromFile+"\"\nlisten = \"\"\nsocket_mode = \"0640\"\nmax_payload = \"64KiB\"\nlog_format = \"json\"\n"), 0o600)
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	// The file's socket and mode apply; the flag's log format wins.
	hub := proctest.Start(t, nil, bin, "serve", "--config", cfg, "--log-format", "text", "--data", filepath.Join(dir, "data"))
	proctest.WaitForSocket(t, sockFromFile, 10*time.Second)
	fi, err := os.Stat(sockFromFile)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("socket from config: %v %v", fi, err)
	}
	env := []string{"SWITCHBOARD_URL=unix://" + sockFromFile}
	_, stderr, code := runCLI(t, env, "", bin, "pub", "big", strings.Repeat("x", 70<<10))
	if code != 1 || !strings.Contains(stderr, "payload") {
		t.Fatalf("publishing over max_payload: exit %d %q", code, stderr)
	}
	hub.Signal(syscall.SIGTERM)
	hub.Wait(15 * time.Second)
	if out := hub.Output(); strings.Contains(out, `{"time"`) || !strings.Contains(out, "level=INFO") {
		t.Fatalf("flag --log-format text did not win over the file:\n%s", out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	for _, args := range [][]string{{"pub"}, {"sub"}, {"req", "a"}, {"sub", "a", "--count", "x"}, {"pub", "a", "--server", "ftp://x"}} {
		if _, stderr, code := runCLI(t, nil, "", bin, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%q)", args, code, stderr)
		}
	}
	// Nothing listening: a runtime error, exit 1.
	env := []string{"SWITCHBOARD_URL=unix://" + filepath.Join(t.TempDir(), "none.sock")}
	if _, stderr, code := runCLI(t, env, "", bin, "pub", "a", "b"); code != 1 {
		t.Errorf("pub without hub: exit %d, want 1 (%q)", code, stderr)
	}
}
