// Package proctest runs real processes for multi-process tests: it builds
// a package's binary once per test run and starts it with its output
// captured line by line.
package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	buildMu  sync.Mutex
	built    = map[string]string{}
	buildDir string
)

// Build compiles the package with the given import path (for example
// "switchboard/cmd/switchboard") once per test binary and returns the path
// of the executable. It skips the test if the go command is unavailable.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("proctest: the go command is not on PATH; cannot build", pkg)
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "proctest-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	cmd := exec.Command(goBin, "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

// Proc is a started process whose stdout and stderr are captured.
type Proc struct {
	t     testing.TB
	Cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	all   strings.Builder // stdout and stderr, for failure messages
	done  chan struct{}
	err   error
}

// Start runs bin with args and env (added to the current environment). The
// process is killed when the test ends, if it is still running.
func Start(t testing.TB, env []string, bin string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &Proc{t: t, Cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); p.scan(stdout, true) }()
	go func() { defer readers.Done(); p.scan(stderr, false) }()
	go func() {
		readers.Wait()
		p.err = cmd.Wait()
		close(p.lines)
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *Proc) scan(r io.Reader, stdout bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.all.WriteString(line + "\n")
		p.mu.Unlock()
		if stdout {
			p.lines <- line
		}
	}
}

// Output returns everything the process printed so far, for messages.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all.String()
}

// Line returns the next line of standard output, failing the test after
// timeout or if the process exits first.
func (p *Proc) Line(timeout time.Duration) string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("%s exited (%v) before printing a line; output:\n%s", p.Cmd.Path, p.err, p.Output())
		}
		return l
	case <-time.After(timeout):
		p.t.Fatalf("%s printed no line within %v; output:\n%s", p.Cmd.Path, timeout, p.Output())
	}
	return ""
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) {
	p.Cmd.Process.Signal(sig)
}

// Wait waits up to timeout for the process to exit and returns its exit
// code.
func (p *Proc) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %v; output:\n%s", p.Cmd.Path, timeout, p.Output())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// WaitForSocket waits until a unix socket at path accepts connections.
func WaitForSocket(t testing.TB, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Type() == os.ModeSocket {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %s did not appear within %v", path, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Env returns "KEY=VALUE".
func Env(key, value string) string { return fmt.Sprintf("%s=%s", key, value) }

// RemoveBuilds deletes the binaries Build made; call it from TestMain after
// m.Run.
func RemoveBuilds() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir = ""
		built = map[string]string{}
	}
}

// WaitOutput waits until the process has printed substr on stdout or
// stderr.
func (p *Proc) WaitOutput(substr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), substr) {
		select {
		case <-p.done:
			if strings.Contains(p.Output(), substr) {
				return
			}
			p.t.Fatalf("%s exited (%v) before printing %q; output:\n%s", p.Cmd.Path, p.err, substr, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not print %q within %v; output:\n%s", p.Cmd.Path, substr, timeout, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Main runs the tests, removes the binaries Build made, checks that no
// goroutine outlived the tests (goleak), and exits. Use it as
// func TestMain(m *testing.M) { proctest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	RemoveBuilds()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "proctest: goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// OpenPolicy is a hub policy for tests that need anonymous network
// clients with every permission, as before the hub had a policy: TCP
// clients without credentials may connect, publish and subscribe
// anywhere, including $SB. Never use it outside tests.
const OpenPolicy = `allow_anonymous = true

[[rule]]
name = "tests: anonymous network clients may do everything"
who = ["anonymous"]
allow_publish = [">", "$SB.>"]
allow_subscribe = [">"]
`
