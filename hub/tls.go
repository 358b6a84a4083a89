package hub

import (
	"crypto/tls"
	"fmt"
	"net"
)

// tlsListener marks a listener whose connections must use TLS. The hub,
// not the listener, runs the handshake, because the NATS protocol sends
// INFO in plaintext first and the client starts TLS after reading it.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

// TLSListener wraps l so that the hub requires TLS on its connections: INFO
// (with tls_required) goes out in plaintext, then the client must complete
// a TLS handshake within Config.AuthTimeout. A verified client certificate
// makes the connection's identity cert:CN (see auth.CertCN). cfg should
// come from auth.ServerTLSConfig; it is not modified.
func TLSListener(l net.Listener, cfg *tls.Config) net.Listener {
	return &tlsListener{Listener: l, cfg: cfg}
}

// ListenTLS listens on a TCP address and requires TLS, as TLSListener.
func ListenTLS(addr string, cfg *tls.Config) (net.Listener, error) {
	if cfg == nil || (len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil) {
		return nil, fmt.Errorf("listen tls %s: no server certificate configured", addr)
	}
	l, err := ListenTCP(addr)
	if err != nil {
		return nil, err
	}
	return TLSListener(l, cfg), nil
}
