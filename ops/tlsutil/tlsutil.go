// Package tlsutil makes certificate authorities and certificates (for
// `daguha tls` and for tests) and loads the TLS configurations daguha's
// links use: gRPC between workers and servers and between servers, and
// Raft. With a CA configured, both ends of a link must present a
// certificate signed by it (mutual TLS).
package tlsutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/daguha/daguha/cluster/identity"
)

// CertOptions describes a certificate to make.
type CertOptions struct {
	CommonName string
	// DNSNames and IPs are the names a server certificate is valid for.
	DNSNames []string
	IPs      []net.IP
	// URIs are the certificate's URI SANs: a daguha identity
	// (identity.Identity.URI) says its role and name.
	URIs []*url.URL
	// Server and Client choose the extended key usages.
	Server, Client bool
	NotBefore      time.Time
	NotAfter       time.Time
	// Identity, when set, is who the certificate says its holder is to
	// the cluster (a server and its node name, or a worker and its id),
	// carried as a URI SAN. A certificate without one is refused by
	// servers (see package identity).
	Identity *identity.Identity
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func encode(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// CreateCA makes a self-signed certificate authority valid from now for
// validity, returning the certificate and key as PEM.
func CreateCA(commonName string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

// CreateCert makes a certificate signed by the CA (PEM in, PEM out).
func CreateCert(caCertPEM, caKeyPEM []byte, options CertOptions) (certPEM, keyPEM []byte, err error) {
	caPair, err := tls.X509KeyPair(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate and key: %w", err)
	}
	caCert, err := x509.ParseCertificate(caPair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	if options.NotBefore.IsZero() {
		options.NotBefore = time.Now().Add(-time.Minute)
	}
	if options.NotAfter.IsZero() {
		options.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	template := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: options.CommonName},
		NotBefore:    options.NotBefore,
		NotAfter:     options.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     options.DNSNames,
		IPAddresses:  options.IPs,
		URIs:         options.URIs,
	}
	if options.Identity != nil {
		template.URIs = []*url.URL{options.Identity.URI()}
	}
	if options.Server {
		template.ExtKeyUsage = append(template.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if options.Client {
		template.ExtKeyUsage = append(template.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, template, caCert, &key.PublicKey, caPair.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

// Files names the PEM files of one end of a link.
type Files struct {
	CertFile string
	KeyFile  string
	CAFile   string
}

// Enabled reports whether any file is set.
func (f Files) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" || f.CAFile != "" }

func loadPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

func loadPair(f Files) ([]tls.Certificate, error) {
	if f.CertFile == "" && f.KeyFile == "" {
		return nil, nil
	}
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("a certificate needs both its cert file and its key file")
	}
	pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		// The key's bytes never reach the message: only the file names.
		return nil, fmt.Errorf("load certificate %s with key %s: not a matching PEM certificate and key", f.CertFile, f.KeyFile)
	}
	return []tls.Certificate{pair}, nil
}

// ServerConfig is the listening side: it presents the certificate and,
// with a CA, requires and verifies the peer's certificate (mutual TLS).
func ServerConfig(f Files) (*tls.Config, error) {
	certs, err := loadPair(f)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("TLS on a listener needs a certificate and key")
	}
	config := &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pool, err := loadPool(f.CAFile)
		if err != nil {
			return nil, err
		}
		config.ClientCAs = pool
		config.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return config, nil
}

// ClientConfig is the dialling side: it verifies the server against the
// CA (or the system's roots without one) and presents its certificate.
func ClientConfig(f Files) (*tls.Config, error) {
	certs, err := loadPair(f)
	if err != nil {
		return nil, err
	}
	config := &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pool, err := loadPool(f.CAFile)
		if err != nil {
			return nil, err
		}
		config.RootCAs = pool
	}
	return config, nil
}

// PeerCAConfig is the dialling side towards a peer that presents the
// certificate it has for being a client: a worker's step log service,
// which serves with the worker's certificate. Such a certificate is
// often made for client authentication only and names no address (a
// worker's address is whatever it was given, a pod's IP, a DHCP lease),
// so the usual checks of a server would refuse every worker. What is
// verified instead is that the certificate chains to the CA (any key
// usage accepted) and is within its validity. That alone proves only
// membership of the CA, which every worker has: dial with the
// configuration ExpectPeer makes from this one, naming the peer that must
// answer. This side presents its own certificate, which the worker's log
// service requires.
func PeerCAConfig(f Files) (*tls.Config, error) {
	certs, err := loadPair(f)
	if err != nil {
		return nil, err
	}
	var roots *x509.CertPool
	if f.CAFile != "" {
		if roots, err = loadPool(f.CAFile); err != nil {
			return nil, err
		}
	}
	return &tls.Config{
		Certificates: certs, MinVersion: tls.VersionTLS12,
		// The standard verification checks the host name and a server's
		// key usage; VerifyPeerCertificate below does the rest of it.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(raw, roots)
		},
	}, nil
}

// Identity reads the identity the certificate in a PEM file carries: a
// server checks its own at start (a role-less or misnamed certificate
// would be refused by every peer).
func Identity(certFile string) (identity.Identity, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return identity.Identity{}, fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("certificate %s: %w", certFile, err)
	}
	id, err := identity.FromCertificate(cert)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("%s: %w", certFile, err)
	}
	return id, nil
}

// PeerIdentity is the identity of the verified certificate a TLS peer
// presented (the leaf of its first verified chain).
func PeerIdentity(state tls.ConnectionState) (identity.Identity, error) {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return identity.Identity{}, errors.New("the peer presented no certificate the CA signed")
	}
	return identity.FromCertificate(state.VerifiedChains[0][0])
}

// verifyChain verifies a presented chain (leaf first) against roots (the
// system's when nil), accepting any key usage and no host name.
func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("the peer presented no certificate")
	}
	chain := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("the peer's certificate %d: %w", i, err)
		}
		chain[i] = cert
	}
	intermediates := x509.NewCertPool()
	for _, cert := range chain[1:] {
		intermediates.AddCert(cert)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return fmt.Errorf("the peer's certificate %q: %w", chain[0].Subject.CommonName, err)
	}
	return nil
}

// ExpectPeer returns a copy of config (made by PeerCAConfig) that also
// has check decide on the peer's certificate once its chain verified: for
// one dial, the peer it must be.
func ExpectPeer(config *tls.Config, check func(leaf *x509.Certificate) error) *tls.Config {
	config = config.Clone()
	verifyChain := config.VerifyPeerCertificate
	config.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		if verifyChain != nil {
			if err := verifyChain(raw, chains); err != nil {
				return err
			}
		}
		if len(raw) == 0 {
			return errors.New("the peer presented no certificate")
		}
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return fmt.Errorf("the peer's certificate: %w", err)
		}
		return check(leaf)
	}
	return config
}

// ExpectIdentity is a check for ExpectPeer: the certificate carries the
// identity role/name (identity.FromCertificate), or it is one of own,
// the certificates this end presents itself (whose keys it holds: a
// worker in a server's own process, as in dev mode, serves with the
// server's certificate). In the security suite's broken build
// (identity.Enforced false) any certificate of the CA passes.
func ExpectIdentity(role identity.Role, name string, own []tls.Certificate) func(*x509.Certificate) error {
	return func(leaf *x509.Certificate) error {
		if !identity.Enforced {
			return nil
		}
		for _, pair := range own {
			if len(pair.Certificate) > 0 && bytes.Equal(pair.Certificate[0], leaf.Raw) {
				return nil
			}
		}
		got, err := identity.FromCertificate(leaf)
		if err != nil {
			return fmt.Errorf("the peer must be %s/%s: %w", role, name, err)
		}
		if got.Role != role || got.Name != name {
			return fmt.Errorf("the peer's certificate %q is %s/%s, not the %s/%s this connection is for", leaf.Subject.CommonName, got.Role, got.Name, role, name)
		}
		return nil
	}
}
