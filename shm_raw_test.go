//go:build linux

package switchboard_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"switchboard/internal/protocol"
)

// rawShmConn is a peer speaking the raw protocol on the hub's unix socket,
// as any peer could, so that a test can order what it sends against what
// it receives, and do what the client would not.
type rawShmConn struct {
	t       *testing.T
	uc      *net.UnixConn
	pending []byte
	fds     []int
}

// dialRawShm connects to the hub's unix socket at sock and reads INFO; the
// caller closes the connection.
func dialRawShm(t *testing.T, sock string) *rawShmConn {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc) // only for INFO: fds come by recvmsg
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "INFO ") {
		t.Fatalf("INFO: %q", l)
	}
	if r.Buffered() > 0 {
		t.Fatal("the hub sent more than INFO before CONNECT")
	}
	return &rawShmConn{t: t, uc: nc.(*net.UnixConn)}
}

// helloRawShm is dialRawShm, then CONNECT and the shared-memory HELLO:
// a peer the hub offers rings to.
func helloRawShm(t *testing.T, sock string) *rawShmConn {
	t.Helper()
	c := dialRawShm(t, sock)
	c.send("CONNECT {\"verbose\":false,\"headers\":true}\r\n")
	c.shm("HELLO", map[string]string{"sid": "1"})
	return c
}

func (s *rawShmConn) send(str string) {
	if _, err := s.uc.Write([]byte(str)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *rawShmConn) shm(verb string, body any) {
	b, _ := json.Marshal(body)
	s.send(fmt.Sprintf("PUB $SB.SHM.%s %d\r\n%s\r\n", verb, len(b), b))
}

// next returns the next control message (with its descriptors) or "PONG",
// answering PINGs and skipping other MSGs; ok is false after d. It leaves
// no read deadline behind.
func (s *rawShmConn) next(d time.Duration) (op string, m protocol.ShmControl, fds []int, ok bool) {
	s.uc.SetReadDeadline(time.Now().Add(d))
	defer s.uc.SetReadDeadline(time.Time{})
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(16*4))
	for {
		for {
			i := strings.Index(string(s.pending), "\r\n")
			if i < 0 {
				break
			}
			line := string(s.pending[:i])
			switch {
			case line == "PING":
				s.send("PONG\r\n")
				s.pending = s.pending[i+2:]
				continue
			case line == "PONG":
				s.pending = s.pending[i+2:]
				return "PONG", m, nil, true
			}
			var subj, sid string
			var size int
			if _, err := fmt.Sscanf(line, "MSG %s %s %d", &subj, &sid, &size); err != nil {
				s.pending = s.pending[i+2:]
				continue
			}
			if len(s.pending) < i+2+size+2 {
				break
			}
			body := s.pending[i+2 : i+2+size]
			s.pending = s.pending[i+2+size+2:]
			if subj != "$SB.SHM.CTL" {
				continue
			}
			var cm protocol.ShmControl
			json.Unmarshal(body, &cm)
			n := min(cm.Fds, len(s.fds))
			got := s.fds[:n:n]
			s.fds = s.fds[n:]
			return cm.Op, cm, got, true
		}
		n, oobn, _, _, err := s.uc.ReadMsgUnix(buf, oob)
		if err != nil {
			return "", m, nil, false
		}
		if oobn > 0 {
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, cm := range msgs {
				got, _ := unix.ParseUnixRights(&cm)
				s.fds = append(s.fds, got...)
			}
		}
		s.pending = append(s.pending, buf[:n]...)
	}
}

// sync sends PING and waits for the PONG: the hub has handled everything
// sent before. Control messages meanwhile are dropped, their descriptors
// closed.
func (s *rawShmConn) sync() {
	s.send("PING\r\n")
	for {
		op, _, fds, ok := s.next(5 * time.Second)
		for _, fd := range fds {
			unix.Close(fd)
		}
		if !ok {
			s.t.Fatal("no PONG")
		}
		if op == "PONG" {
			return
		}
	}
}
