package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// CertCN returns the subject common name of the client certificate in a
// completed TLS handshake, or "" when the client sent none. Only a
// certificate the server verified against its client CAs counts: an
// unverified one (possible with tls.RequestClientCert) gives "".
func CertCN(st tls.ConnectionState) string {
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}

// TLSOptions are the files of a TLS listener.
type TLSOptions struct {
	CertFile string // server certificate chain (PEM); required
	KeyFile  string // its private key (PEM); required
	// ClientCAFile holds the CAs (PEM) that client certificates must chain
	// to. Without it client certificates are not accepted.
	ClientCAFile string
	// Verify requires every client to present a certificate signed by a
	// ClientCAFile CA (mutual TLS). Without it a client certificate is
	// verified if given, and clients without one must log in with a
	// password or token instead.
	Verify bool
}

// ServerTLSConfig builds the TLS configuration of a listener: TLS 1.2 at
// least (1.3 preferred by the Go stack), the server certificate, and
// client certificate verification as o asks.
func ServerTLSConfig(o TLSOptions) (*tls.Config, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("tls: both a certificate and a key file are required")
	}
	if o.Verify && o.ClientCAFile == "" {
		return nil, errors.New("tls: verifying client certificates needs a client CA file")
	}
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate %s and key %s: %w", o.CertFile, o.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.NoClientCert,
	}
	if o.ClientCAFile != "" {
		pem, err := os.ReadFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: client CA %s: no PEM certificates in it", o.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if o.Verify {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}
