package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverInfo describes a server process under test, from its INFO line.
type serverInfo struct {
	Server  string `json:"server"` // "hub" or "nats"
	Version string `json:"version"`
	PID     int    `json:"pid"`
	Unix    string `json:"unix,omitempty"`
	TCP     string `json:"tcp"`
}

// serverProc is a server process the bench started and must stop.
type serverProc struct {
	info    serverInfo
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid after exited is closed
	stopped bool
}

// benchTarget is one server and transport that a workload runs against.
type benchTarget struct {
	server    string // "hub" or "nats"
	transport string // "unix" or "tcp"
	url       string
	proc      *serverProc
}

// url returns the client URL for a transport of the server.
func (p *serverProc) url(transport string) string {
	if transport == "unix" {
		return "unix://" + p.info.Unix
	}
	return "tcp://" + p.info.TCP
}

// start runs cmd and watches for its exit.
func (p *serverProc) start() error {
	p.cmd.SysProcAttr = childSysProcAttr()
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.info.PID = p.cmd.Process.Pid
	p.exited = make(chan struct{})
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// stop sends SIGTERM, waits up to 10s (then kills) and reports an exit
// other than a clean one. It is safe to call more than once.
func (p *serverProc) stop() error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	select {
	case <-p.exited:
		return fmt.Errorf("exited during the bench: %v", p.waitErr)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("did not exit within 10s of SIGTERM; killed")
	}
	if p.waitErr != nil {
		return fmt.Errorf("exit after SIGTERM: %v", p.waitErr)
	}
	return nil
}

// exitErr describes an unexpected exit, for errors while starting.
func (p *serverProc) exitErr(name string) error {
	return fmt.Errorf("%s exited while starting: %v", name, p.waitErr)
}

// benchPolicy lets the benchmark's TCP clients in without credentials, as
// nats-server (which runs without authentication in the comparison) does,
// with every permission, so the hub checks nothing per message — as for
// the benchmark's unix clients, which run as the hub's own uid.
const benchPolicy = `allow_anonymous = true

[[rule]]
name = "bench: anonymous TCP clients may do everything"
who = ["anonymous"]
allow_publish = [">", "$SB.>"]
allow_subscribe = [">"]
`

// startHub starts `<this executable> serve` on a unix socket in dir and a
// free TCP port, and waits until both accept.
func startHub(ctx context.Context, dir string, maxPayload int, stderr io.Writer) (*serverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	sock := filepath.Join(dir, "hub.sock")
	if len(sock) > 100 {
		return nil, fmt.Errorf("socket path %s is too long for a unix socket; set TMPDIR to a shorter directory", sock)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port may be taken before the hub binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		os.Remove(sock)
		pol := filepath.Join(dir, "policy.toml")
		if err := os.WriteFile(pol, []byte(benchPolicy), 0o600); err != nil {
			return nil, err
		}
		p := &serverProc{info: serverInfo{Server: "hub", Unix: sock, TCP: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}}
		p.cmd = exec.Command(exe, "serve",
			"--socket", sock,
			"--listen", p.info.TCP,
			"--policy", pol,
			"--data", filepath.Join(dir, "data"),
			"--log-level", "warn",
			"--max-payload", strconv.Itoa(maxPayload))
		p.cmd.Stderr = &prefixWriter{prefix: "hub: ", w: stderr}
		if err := p.start(); err != nil {
			return nil, fmt.Errorf("start hub: %w", err)
		}
		lastErr = p.waitReady(ctx, "hub")
		if lastErr == nil {
			return p, nil
		}
		p.stop()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// findNATSServer locates the sb-nats-server binary: the flag, else next to
// this executable, else on $PATH.
func findNATSServer(flag string) (string, error) {
	const how = "build it with `go build -o bin/sb-nats-server ./cmd/sb-nats-server` (next to the switchboard binary) or pass --nats-server PATH"
	if flag != "" {
		if st, err := os.Stat(flag); err != nil || st.IsDir() {
			return "", usagef("--nats-server %s: not a file; %s", flag, how)
		}
		return flag, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "sb-nats-server")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("sb-nats-server"); err == nil {
		return p, nil
	}
	return "", usagef("--vs-nats needs the sb-nats-server binary, which is neither next to this executable nor on $PATH: %s", how)
}

// startNATS starts sb-nats-server on a free port and waits until it accepts.
func startNATS(ctx context.Context, path string, maxPayload int, stderr io.Writer) (*serverProc, error) {
	p := &serverProc{info: serverInfo{Server: "nats"}}
	p.cmd = exec.Command(path, "-addr", "127.0.0.1:0", "-max-payload", strconv.Itoa(maxPayload))
	p.cmd.Stderr = &prefixWriter{prefix: "nats-server: ", w: stderr}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
		io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		if _, _, err := net.SplitHostPort(l); err != nil {
			p.stop()
			return nil, fmt.Errorf("%s printed %q, not host:port", path, l)
		}
		p.info.TCP = l
	case <-p.exited:
		return nil, p.exitErr("sb-nats-server")
	case <-time.After(10 * time.Second):
		p.stop()
		return nil, errors.New("sb-nats-server did not print its address within 10s")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	if err := p.waitReady(ctx, "nats-server"); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls the process's listeners until each sends INFO, for at
// most 10s, and records the version the server reports.
func (p *serverProc) waitReady(ctx context.Context, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	var addrs [][2]string
	if p.info.Unix != "" {
		addrs = append(addrs, [2]string{"unix", p.info.Unix})
	}
	addrs = append(addrs, [2]string{"tcp", p.info.TCP})
	for _, a := range addrs {
		for {
			info, err := probeInfo(a[0], a[1])
			if err == nil {
				if v, ok := info["version"].(string); ok {
					p.info.Version = v
				}
				break
			}
			select {
			case <-p.exited:
				return p.exitErr(name)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not accepting on %s %s after 10s: %v", name, a[0], a[1], err)
			}
		}
	}
	return nil
}

// probeInfo dials addr and returns the server's INFO fields.
func probeInfo(network, addr string) (map[string]any, error) {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return parseInfo(line)
}

// parseInfo decodes an "INFO {...}\r\n" line.
func parseInfo(line []byte) (map[string]any, error) {
	rest, ok := bytes.CutPrefix(line, []byte("INFO "))
	if !ok {
		return nil, fmt.Errorf("expected INFO, got %q", bytes.TrimSpace(line))
	}
	var info map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(rest), &info); err != nil {
		return nil, fmt.Errorf("INFO: %w", err)
	}
	return info, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readRSS returns the resident set size of process pid in bytes, from
// /proc/<pid>/status.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				n, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return n << 10, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
