package switchboard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"switchboard/internal/protocol"
)

// errTLSUnix says why TLS and unix sockets do not mix.
const errTLSUnix = "TLS is not supported over unix sockets (the hub identifies unix-socket clients by their kernel credentials)"

// TLSClientConfig builds a client TLS configuration from PEM files, for
// Options.TLSConfig:
//
//   - caFile holds the CA certificates the hub's certificate must chain
//     to; "" means the system's root CAs.
//   - certFile and keyFile hold the client's certificate chain and private
//     key, for mutual TLS; give both or neither.
//
// The configuration requires TLS 1.2 or later. Its ServerName is empty, so
// Connect verifies the hub's certificate against the host of the URL; set
// ServerName to verify another name. Errors wrap ErrTLS and name the file.
func TLSClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %w", ErrTLS, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s: no PEM certificate in it", ErrTLS, caFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate %s and key %s: %w", ErrTLS, certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case certFile != "":
		return nil, fmt.Errorf("%w: client certificate %s given without its key file", ErrTLS, certFile)
	case keyFile != "":
		return nil, fmt.Errorf("%w: client key %s given without its certificate file", ErrTLS, keyFile)
	}
	return cfg, nil
}

// tlsConfigFor returns the configuration of the Conn's TLS handshakes: a
// copy of cfg, or a default that verifies against the system roots, with
// ServerName set to host when empty. The Conn reuses it for reconnects.
func tlsConfigFor(cfg *tls.Config, host string) *tls.Config {
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return cfg
}

// useTLS decides, from the hub's first INFO, whether this connection
// upgrades to TLS: when the client requires it (tls:// URL or
// Options.TLSConfig) or the hub does (tls_required). A mismatch that
// cannot be resolved is an ErrTLS.
func (c *Conn) useTLS(info *protocol.Info) (bool, error) {
	want := c.target.tls || c.opts.TLSConfig != nil
	switch {
	case info.TLSRequired && c.target.network == "unix":
		return false, fmt.Errorf("%w: the hub requires TLS, but %s", ErrTLS, errTLSUnix)
	case want && !info.TLSRequired && !info.TLSAvailable:
		why := "Options.TLSConfig is set"
		if c.target.tls {
			why = "tls:// URL"
		}
		return false, fmt.Errorf("%w: the client requires TLS (%s) but the hub does not offer it", ErrTLS, why)
	}
	return want || info.TLSRequired, nil
}

// startTLS runs the client side of the TLS handshake on nc, after the
// hub's plaintext INFO. nc's deadline (DialTimeout) and ctx bound it.
func (c *Conn) startTLS(ctx context.Context, nc net.Conn) (*tls.Conn, error) {
	tc := tls.Client(nc, c.tlsConf)
	if err := tc.HandshakeContext(ctx); err != nil {
		var ve *tls.CertificateVerificationError
		if c.opts.TLSConfig == nil && errors.As(err, &ve) {
			return nil, fmt.Errorf("%w: the hub's certificate was checked against the system's root CAs (no Options.TLSConfig): %w",
				ErrTLS, c.handshakeErr(ctx, err))
		}
		return nil, c.tlsErr(ctx, err)
	}
	return tc, nil
}

// tlsErr wraps a failed TLS handshake in ErrTLS, except when ctx ended.
func (c *Conn) tlsErr(ctx context.Context, err error) error {
	herr := c.handshakeErr(ctx, err)
	if errors.Is(herr, context.Canceled) || errors.Is(herr, context.DeadlineExceeded) {
		return herr
	}
	return fmt.Errorf("%w: %w", ErrTLS, herr)
}

// isTLSAlert reports whether err is a TLS alert from the hub, such as the
// rejection of the client's certificate. With TLS 1.3 the client finishes
// its handshake before the hub checks the certificate, so the alert
// arrives on the first read after it.
func isTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}
