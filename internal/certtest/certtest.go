// Package certtest makes throwaway X.509 certificates for tests: a CA,
// server certificates for the hosts a test listens on and client
// certificates for mutual TLS, each written as PEM files into the test's
// temporary directory and also returned as ready-made *tls.Config values.
//
//	ca := certtest.New(t)
//	srv := ca.Server()                  // 127.0.0.1, ::1 and localhost
//	cli := ca.Client("alice", time.Time{}, time.Time{})
//	serverCfg := srv.ServerConfig()     // set ClientAuth for mutual TLS
//	clientCfg := cli.ClientConfig()     // trusts ca, presents alice
//	// or, from files: ca.CertFile, cli.CertFile, cli.KeyFile
//
// Keys are ECDSA P-256, so generating them is cheap. Nothing here is fit
// for anything but tests.
package certtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultHosts are the names a server certificate covers when Server is
// called without any.
var DefaultHosts = []string{"127.0.0.1", "::1", "localhost"}

// seq numbers the CAs and certificates of a test binary, for their names
// and file names.
var seq atomic.Int64

// CA is a self-signed certificate authority that issues server and client
// certificates. Its methods fail the test on error; they may be called
// from concurrent goroutines.
type CA struct {
	// CertFile is the CA certificate (PEM): the file clients pass as their
	// CA and servers as their client CA.
	CertFile string
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Pool holds Cert alone: RootCAs for clients, ClientCAs for servers.
	Pool *x509.CertPool

	t   testing.TB
	key *ecdsa.PrivateKey
	dir string
}

// Cert is a certificate issued by a CA, with its private key.
type Cert struct {
	// CertFile holds the certificate (PEM); KeyFile its private key
	// (PEM, PKCS #8). Both are in the test's temporary directory.
	CertFile string
	KeyFile  string
	// Leaf is the parsed certificate.
	Leaf *x509.Certificate
	// TLS is the certificate and key for tls.Config.Certificates.
	TLS tls.Certificate
	// CA is the issuer.
	CA *CA
}

// New creates a CA valid from an hour ago for a day, with its certificate
// in a new directory under t.TempDir().
func New(t testing.TB) *CA {
	t.Helper()
	n := seq.Add(1)
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "certtest CA " + itoa(n), Organization: []string{"switchboard tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("certtest: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certtest: parse CA: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "ca"+itoa(n))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("certtest: %v", err)
	}
	ca := &CA{Cert: cert, Pool: x509.NewCertPool(), t: t, key: key, dir: dir}
	ca.Pool.AddCert(cert)
	ca.CertFile = writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", der)
	return ca
}

// Server issues a server certificate for hosts (IP addresses or DNS
// names; DefaultHosts when none), valid from an hour ago for a day. Its
// common name is the first host.
func (ca *CA) Server(hosts ...string) *Cert {
	ca.t.Helper()
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue("server-"+sanitize(hosts[0]), tmpl)
}

// Client issues a client certificate (for mutual TLS) whose subject
// common name is cn. A zero notBefore means an hour ago, a zero notAfter a
// day from now; pass times in the past or future to get an expired or a
// not-yet-valid certificate.
func (ca *CA) Client(cn string, notBefore, notAfter time.Time) *Cert {
	ca.t.Helper()
	now := time.Now()
	if notBefore.IsZero() {
		notBefore = now.Add(-time.Hour)
	}
	if notAfter.IsZero() {
		notAfter = now.Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.issue("client-"+sanitize(cn), tmpl)
}

// ClientConfig returns a client configuration that trusts the CA and
// presents no certificate (TLS 1.2 or later; ServerName left empty).
func (ca *CA) ClientConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.Pool}
}

// ServerConfig returns a server configuration presenting c. Client
// certificates issued by c's CA are accepted and verified when a client
// sends one (tls.VerifyClientCertIfGiven); set ClientAuth to
// tls.RequireAndVerifyClientCert for mutual TLS.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.TLS},
		ClientCAs:    c.CA.Pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}
}

// ClientConfig returns a client configuration that trusts c's CA and
// presents c (mutual TLS).
func (c *Cert) ClientConfig() *tls.Config {
	cfg := c.CA.ClientConfig()
	cfg.Certificates = []tls.Certificate{c.TLS}
	return cfg
}

// issue signs tmpl with a new key and writes name.pem and name-key.pem.
func (ca *CA) issue(name string, tmpl *x509.Certificate) *Cert {
	t := ca.t
	t.Helper()
	name += "-" + itoa(seq.Add(1))
	key := newKey(t)
	tmpl.SerialNumber = serial(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("certtest: create %s: %v", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certtest: parse %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("certtest: marshal key: %v", err)
	}
	return &Cert{
		CertFile: writePEM(t, filepath.Join(ca.dir, name+".pem"), "CERTIFICATE", der),
		KeyFile:  writePEM(t, filepath.Join(ca.dir, name+"-key.pem"), "PRIVATE KEY", keyDER),
		Leaf:     leaf,
		TLS:      tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		CA:       ca,
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("certtest: generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("certtest: serial: %v", err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte) string {
	t.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("certtest: %v", err)
	}
	return path
}

// sanitize makes s usable in a file name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
