package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"switchboard/auth"
	"switchboard/internal/protocol"
)

// A connection is authorized when it is accepted if the transport alone
// identifies it and the policy grants that identity something: a unix
// socket peer (kernel credentials), a verified client certificate, or an
// anonymous network client when the policy allows anonymous access. A
// first CONNECT with credentials may then widen the identity (a local
// process presenting a token). Any other connection must send CONNECT
// with valid credentials within Config.AuthTimeout; until then it may send
// only CONNECT, PING and PONG, and the hub holds at most preAuthLine bytes
// of an unfinished line and a read buffer of preAuthReadBuf: a peer that
// never authenticates cannot make the hub allocate more than a few KiB.
const (
	preAuthLine    = 4096
	preAuthReadBuf = 4096
)

var (
	errAuthFailed  = errors.New("authentication failed")
	errAuthTimeout = errors.New("authentication timeout")
)

// authViolation is the -ERR text for failed authentication and for
// operations sent before CONNECT, as nats-server words it.
const authViolation = "Authorization Violation"

// admit establishes who is on the other end before anything is read: the
// kernel's peer credentials on a unix socket, or a TLS handshake with an
// optional client certificate. It sends INFO. It runs on the reader
// goroutine; a non-nil error ends the connection.
func (c *client) admit() error {
	c.raw.SetDeadline(time.Now().Add(c.h.cfg.AuthTimeout))
	pol := c.h.cfg.Policy
	id := &auth.Identity{Transport: "tcp"}
	if uc, ok := c.raw.(*net.UnixConn); ok {
		pid, err := auth.PeerIdentity(uc, pol.NeedsNames())
		if err != nil {
			c.h.auditConn("connection refused: no peer credentials", "cid", c.id, "remote", remoteAddr(c.raw), "err", err)
			c.h.stats.authFailures.Add(1)
			return err
		}
		id = pid
	} else if c.tls != nil {
		id.Transport = "tls"
	}
	c.who = id
	c.base = id

	maxPayload := c.h.cfg.MaxPayload
	if id.Local {
		// Unix peers are known before CONNECT: advertise their own limit,
		// so that clients check it before sending.
		if lim := pol.Grant(id).Limits().MaxPayload; lim > 0 && lim < maxPayload {
			maxPayload = lim
		}
	}
	info := c.h.info(c, maxPayload)
	if c.tls == nil {
		c.mu.Lock()
		c.out = append(c.out, info...)
		c.mu.Unlock()
		c.flushInline()
		c.raw.SetWriteDeadline(time.Time{})
		return c.authorizeEarly()
	}
	// TLS: INFO in plaintext, then the handshake, all within AuthTimeout.
	if _, err := c.raw.Write(info); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.AuthTimeout)
	defer cancel()
	if err := c.tls.HandshakeContext(ctx); err != nil {
		c.h.stats.authFailures.Add(1)
		c.h.auditConn("authentication failed: TLS handshake", "cid", c.id, "transport", id.Transport, "remote", remoteAddr(c.raw), "err", err)
		return errAuthFailed
	}
	id.CertCN = auth.CertCN(c.tls.ConnectionState())
	c.raw.SetWriteDeadline(time.Time{})
	return c.authorizeEarly()
}

// authorizeEarly authorizes a connection that its transport identifies
// well enough, before it sends anything (see the top of this file). An
// identity under a per-principal connection limit is left to CONNECT: it
// is counted only once it has shown its credentials, so that idle
// anonymous connections cannot use up a limit and lock out logins.
func (c *client) authorizeEarly() error {
	pol := c.h.cfg.Policy
	if !c.base.Local && c.base.CertCN == "" && !pol.AllowAnonymous() {
		return nil
	}
	who := *c.base
	if pol.Authenticate(context.Background(), &who, auth.Credentials{}) != nil {
		return nil
	}
	// An identity granted nothing is refused when it sends CONNECT (or at
	// the auth timeout), not at once: the -ERR then answers its CONNECT,
	// where every client library looks for it.
	if g := pol.Grant(&who); !g.Empty() && g.Limits().MaxConnections == 0 {
		return c.authorize(&who, g)
	}
	return nil
}

// authenticate runs at the first CONNECT: it checks the credentials, works
// out what the identity may do and applies its limits. A connection
// authorized early keeps its authorization unless CONNECT brings
// credentials. On failure it sends -ERR and returns an error that ends the
// connection.
func (c *client) authenticate(opts *protocol.Connect) error {
	creds := auth.Credentials{User: opts.User, Pass: opts.Pass, Token: opts.AuthToken}
	if c.authed && creds == (auth.Credentials{}) {
		return nil
	}
	pol := c.h.cfg.Policy
	who := *c.base
	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.AuthTimeout)
	err := pol.Authenticate(ctx, &who, creds)
	cancel()
	c.who = &who
	if err != nil {
		return c.refuse("authentication failed", err.Error())
	}
	g := pol.Grant(&who)
	if g.Empty() {
		return c.refuse("connection refused: no rule grants this identity anything", "")
	}
	return c.authorize(&who, g)
}

// authorize makes g the connection's grant and applies its limits.
func (c *client) authorize(who *auth.Identity, g *auth.Grant) error {
	lim := g.Limits()
	if c.principal != "" {
		c.h.removePrincipalConn(c.principal)
		c.principal = ""
	}
	if key := who.Key(); lim.MaxConnections > 0 && key != "" {
		if !c.h.addPrincipalConn(key, lim.MaxConnections) {
			c.h.stats.rejected.Add(1)
			c.h.auditConn("connection refused: per-principal connection limit", "cid", c.id, "who", who, "principal", key, "max", lim.MaxConnections)
			c.sendErrAndClose("maximum connections exceeded")
			return errAuthFailed
		}
		c.principal = key
	}
	c.who = who
	c.key = who.Key()
	c.grant = g
	c.restricted = !g.Unrestricted()
	c.maxSubs = c.h.cfg.MaxSubscriptions
	if lim.MaxSubscriptions > 0 && (c.maxSubs == 0 || lim.MaxSubscriptions < c.maxSubs) {
		c.maxSubs = lim.MaxSubscriptions
	}
	maxPayload := c.h.cfg.MaxPayload
	if lim.MaxPayload > 0 && lim.MaxPayload < maxPayload {
		maxPayload = lim.MaxPayload
	}
	c.parser.SetMaxPayload(maxPayload)
	c.maxPayload = maxPayload
	c.parser.SetMaxControlLine(c.h.cfg.MaxControlLine)
	c.respTTL = 0
	if on, ttl := c.h.cfg.Policy.Responses(); on && c.restricted {
		c.respTTL = ttl
	}
	c.lastPubOK = false
	c.authed = true
	c.nc.SetReadDeadline(time.Time{})
	c.log.Debug("authorized", "who", c.who, "restricted", c.restricted)
	return nil
}

// refuse logs a failed authentication, tells the peer and returns the error
// that ends the connection.
func (c *client) refuse(msg, detail string) error {
	c.h.stats.authFailures.Add(1)
	attrs := []any{"cid", c.id, "who", c.who, "transport", c.who.Transport, "remote", remoteAddr(c.raw)}
	if detail != "" {
		attrs = append(attrs, "err", detail)
	}
	c.h.auditConn(msg, attrs...)
	c.sendErrAndClose(authViolation)
	return errAuthFailed
}

// preAuth handles a frame other than CONNECT, PING or PONG that arrived
// before authentication.
func (c *client) preAuth(f *protocol.Frame) error {
	return c.refuse("operation before CONNECT", fmt.Sprintf("%s before CONNECT", opName(f.Op)))
}

// authTimedOut reports whether err is the read deadline set by admit
// passing before CONNECT.
func (c *client) authTimedOut(err error) bool {
	var ne net.Error
	return !c.authed && errors.As(err, &ne) && ne.Timeout()
}

// addPrincipalConn counts a connection of principal key, unless it already
// has max.
func (h *Hub) addPrincipalConn(key string, max int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.principals[key] >= max {
		return false
	}
	h.principals[key]++
	return true
}

func (h *Hub) removePrincipalConn(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.principals[key]--; h.principals[key] <= 0 {
		delete(h.principals, key)
	}
}

func opName(op protocol.Op) string {
	switch op {
	case protocol.OpPub:
		return "PUB"
	case protocol.OpHPub:
		return "HPUB"
	case protocol.OpSub:
		return "SUB"
	case protocol.OpUnsub:
		return "UNSUB"
	}
	return "operation"
}
