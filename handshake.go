package switchboard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"switchboard/internal/protocol"
)

// clientVersion is sent in CONNECT.
const clientVersion = "0.1.0"

// session is a connection that completed the handshake.
type session struct {
	nc   net.Conn
	p    *protocol.Parser // may hold a partial frame that followed the PONG
	info *protocol.Info
	errs []string // -ERR texts that arrived after the PONG, in the same read
}

// unixSocketBuffer is the socket buffer size asked for on unix connections.
const unixSocketBuffer = 2 << 20

// dial connects to the hub and runs the handshake: read INFO, start TLS
// if it is used, send CONNECT and PING, wait for PONG (or -ERR).
func (c *Conn) dial(ctx context.Context) (*session, error) {
	d := net.Dialer{Timeout: c.opts.DialTimeout}
	nc, err := d.DialContext(ctx, c.target.network, c.target.addr)
	if err != nil {
		return nil, err
	}
	if uc, ok := nc.(*net.UnixConn); ok {
		// Unix sockets do not autotune their buffers as TCP does; the
		// default (~200 KiB) limits streaming. The kernel caps the request
		// at net.core.wmem_max / rmem_max.
		_ = uc.SetWriteBuffer(unixSocketBuffer)
		_ = uc.SetReadBuffer(unixSocketBuffer)
	}
	s, err := c.handshake(ctx, nc)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return s, nil
}

// lateErrors hands -ERRs that followed the PONG to the normal handling.
// Called before the reader reads from s.
func (c *Conn) lateErrors(s *session) {
	for _, e := range s.errs {
		c.processErr(e)
	}
}

// handshake runs the protocol handshake on raw. The session's connection
// is raw, or a *tls.Conn over it when TLS is used.
func (c *Conn) handshake(ctx context.Context, raw net.Conn) (*session, error) {
	deadline := time.Now().Add(c.opts.DialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	nc := raw // becomes the TLS connection once TLS starts

	p := protocol.NewParser(protocol.ClientSide, protocol.Limits{MaxControlLine: maxInboundControlLine})
	var (
		info      *protocol.Info
		sent      bool // CONNECT and PING written
		secure    bool // TLS in use
		gotPong   bool
		needPong  int // server PINGs to answer
		serverErr *ServerError
		frameErr  error
		late      []string
	)
	fn := func(f *protocol.Frame) error {
		switch f.Op {
		case protocol.OpInfo:
			i, err := protocol.DecodeInfo(f.Payload)
			if err != nil {
				frameErr = err
				return nil
			}
			info = i
		case protocol.OpPing:
			needPong++
		case protocol.OpPong:
			if sent {
				gotPong = true
			}
		case protocol.OpErr:
			if gotPong {
				late = append(late, string(f.Payload))
			} else if serverErr == nil {
				serverErr = &ServerError{Msg: string(f.Payload)}
			}
		case protocol.OpMsg, protocol.OpHMsg:
			if info == nil {
				frameErr = errors.New("protocol: message before INFO")
			}
		}
		return nil
	}
	buf := make([]byte, 4096)
	for {
		n, rerr := nc.Read(buf)
		if n > 0 {
			if err := p.Parse(buf[:n], fn); err != nil {
				return nil, err
			}
		}
		if serverErr != nil {
			if strings.Contains(strings.ToLower(serverErr.Msg), "authentication timeout") {
				return nil, fmt.Errorf("handshake: the hub's authentication timeout expired before it had our CONNECT (slow network or TLS handshake?): %w", serverErr)
			}
			return nil, serverErr
		}
		if frameErr != nil {
			return nil, frameErr
		}
		var w []byte
		if info != nil && !sent {
			var err error
			if secure, err = c.useTLS(info); err != nil {
				return nil, err
			}
			if secure {
				// The hub sends nothing after INFO until the client
				// starts TLS; anything else read in plaintext is dropped.
				tc, err := c.startTLS(ctx, raw)
				if err != nil {
					return nil, err
				}
				nc = tc
				p = protocol.NewParser(protocol.ClientSide, protocol.Limits{MaxControlLine: maxInboundControlLine})
				needPong = 0
			}
			p.SetMaxPayload(int(info.MaxPayload))
			w = protocol.AppendConnect(w, c.connectBody(secure))
			w = append(w, protocol.Ping...)
			sent = true
		}
		for ; needPong > 0; needPong-- {
			w = append(w, protocol.Pong...)
		}
		if len(w) > 0 {
			if _, err := nc.Write(w); err != nil {
				return nil, c.readWriteErr(ctx, err)
			}
		}
		if gotPong {
			break
		}
		if rerr != nil {
			return nil, c.readWriteErr(ctx, rerr)
		}
	}
	if !stop() {
		return nil, ctx.Err() // the deadline is being cut: do not clear it
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return &session{nc: nc, p: p, info: info, errs: late}, nil
}

// readWriteErr is handshakeErr, and ErrTLS for a TLS alert from the hub
// (a rejected client certificate shows up on the first read after the
// client's side of a TLS 1.3 handshake).
func (c *Conn) readWriteErr(ctx context.Context, err error) error {
	if isTLSAlert(err) {
		return c.tlsErr(ctx, err)
	}
	return c.handshakeErr(ctx, err)
}

// handshakeErr reports ctx's error rather than the deadline it caused.
func (c *Conn) handshakeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return context.DeadlineExceeded // the ctx timer has not fired yet
		}
		return fmt.Errorf("handshake: hub did not answer within %v: %w", c.opts.DialTimeout, err)
	}
	return fmt.Errorf("handshake: %w", err)
}

// connectBody is the CONNECT of this Conn; secure says TLS is in use.
func (c *Conn) connectBody(secure bool) *protocol.Connect {
	return &protocol.Connect{
		TLSRequired:  secure,
		AuthToken:    c.opts.Token,
		User:         c.opts.User,
		Pass:         c.opts.Password,
		Name:         c.opts.Name,
		Lang:         "go",
		Version:      clientVersion,
		Protocol:     1,
		Echo:         !c.opts.NoEcho,
		Headers:      true,
		NoResponders: true,
	}
}
