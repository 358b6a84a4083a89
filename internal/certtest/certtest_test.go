package certtest_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"switchboard/internal/certtest"
)

func TestServerCertCoversHosts(t *testing.T) {
	ca := certtest.New(t)
	srv := ca.Server()
	for _, h := range certtest.DefaultHosts {
		if err := srv.Leaf.VerifyHostname(h); err != nil {
			t.Errorf("default server certificate: %v", err)
		}
	}
	named := ca.Server("hub.example", "10.1.2.3")
	for _, h := range []string{"hub.example", "10.1.2.3"} {
		if err := named.Leaf.VerifyHostname(h); err != nil {
			t.Errorf("%v", err)
		}
	}
	if err := named.Leaf.VerifyHostname("localhost"); err == nil {
		t.Error("certificate for hub.example also covers localhost")
	}
	if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool}); err != nil {
		t.Fatalf("server certificate does not chain to its CA: %v", err)
	}
	if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: certtest.New(t).Pool}); err == nil {
		t.Fatal("server certificate verifies against another CA")
	}
	for _, f := range []string{ca.CertFile, srv.CertFile, srv.KeyFile} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	if _, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile); err != nil {
		t.Fatalf("files do not load: %v", err)
	}
}

func TestClientCertValidity(t *testing.T) {
	ca := certtest.New(t)
	c := ca.Client("alice", time.Time{}, time.Time{})
	if c.Leaf.Subject.CommonName != "alice" {
		t.Fatalf("CN %q", c.Leaf.Subject.CommonName)
	}
	opts := x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := c.Leaf.Verify(opts); err != nil {
		t.Fatal(err)
	}
	old := ca.Client("old", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	var inv x509.CertificateInvalidError
	if _, err := old.Leaf.Verify(opts); !errors.As(err, &inv) || inv.Reason != x509.Expired {
		t.Fatalf("expired certificate: %v", err)
	}
}

// TestMutualTLS runs a handshake between the configs the package returns.
func TestMutualTLS(t *testing.T) {
	ca := certtest.New(t)
	scfg := ca.Server().ServerConfig()
	scfg.ClientAuth = tls.RequireAndVerifyClientCert
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- err.Error()
			return
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}()
	ccfg := ca.Client("bob", time.Time{}, time.Time{}).ClientConfig()
	ccfg.ServerName = "127.0.0.1"
	c, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := <-peer; got != "bob" {
		t.Fatalf("server saw %q", got)
	}
	// A client that trusts another CA refuses the server.
	bad := certtest.New(t).ClientConfig()
	bad.ServerName = "127.0.0.1"
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	_, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), bad)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("dial with the wrong CA: %v", err)
	}
}
