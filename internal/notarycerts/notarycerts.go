// Package notarycerts makes certificates that meet the Notary Project's
// requirements, for tests and for `ward init --notation`: a signing chain
// (a root CA and a leaf for notation sign) and an RFC 3161 timestamp
// authority that answers over HTTP.
package notarycerts

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"github.com/digitorus/timestamp"
)

// Chain is a signing chain: a self-signed root CA and a leaf it issued,
// with the leaf's private key. The leaf meets the Notary Project's
// rules: key usage digitalSignature only (critical), codeSigning, not a
// CA.
type Chain struct {
	Root, Leaf *x509.Certificate
	// Key is the leaf's key; RootKey the root's (to answer OCSP requests
	// in tests).
	Key, RootKey *ecdsa.PrivateKey
}

// LeafOption changes the leaf's template.
type LeafOption func(*x509.Certificate)

// WithOCSP names an OCSP responder in the leaf, so that verifiers check
// its revocation there.
func WithOCSP(url string) LeafOption {
	return func(c *x509.Certificate) { c.OCSPServer = []string{url} }
}

// Subject is a distinguished name as notation's trusted identities need
// one: C, ST and O are required there.
func Subject(cn, org string) pkix.Name {
	return pkix.Name{Country: []string{"US"}, Province: []string{"WA"}, Organization: []string{org}, CommonName: cn}
}

// NewChain makes a root CA valid from notBefore to notAfter and a leaf for
// subject with the same validity.
func NewChain(subject pkix.Name, notBefore, notAfter time.Time, opts ...LeafOption) (*Chain, error) {
	rootSubject := subject
	rootSubject.CommonName = subject.CommonName + " root CA"
	root, rootKey, key, err := newRoot(rootSubject, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	template := &x509.Certificate{
		Subject: subject, NotBefore: notBefore, NotAfter: notAfter,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	for _, o := range opts {
		o(template)
	}
	leaf, err := issue(template, root, &key.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	return &Chain{Root: root, Leaf: leaf, Key: key, RootKey: rootKey}, nil
}

// newRoot makes a self-signed root CA, and a key for the leaf it will
// issue.
func newRoot(subject pkix.Name, notBefore, notAfter time.Time) (root *x509.Certificate, rootKey, leafKey *ecdsa.PrivateKey, err error) {
	if rootKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, nil, nil, err
	}
	root, err = issue(&x509.Certificate{
		Subject: subject, NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, nil, nil, err
	}
	if leafKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, nil, nil, err
	}
	return root, rootKey, leafKey, nil
}

// Certificates is the chain leaf first, as a signer gives it (the leaf
// alone when it is self-signed: Root nil).
func (c *Chain) Certificates() []*x509.Certificate {
	if c.Root == nil {
		return []*x509.Certificate{c.Leaf}
	}
	return []*x509.Certificate{c.Leaf, c.Root}
}

// RootPEM is the root certificate in PEM: what a trust store holds.
func (c *Chain) RootPEM() []byte { return CertPEM(c.Root) }

// ChainPEM is the leaf then the root in PEM: notation's certificate chain
// file for a signing key.
func (c *Chain) ChainPEM() []byte { return append(CertPEM(c.Leaf), CertPEM(c.Root)...) }

// KeyPEM is the leaf's private key in PKCS #8 PEM.
func (c *Chain) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CertPEM encodes one certificate.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// issue signs template with signer's key (parent nil: self-signed). Go
// marks key usage critical, as the Notary Project requires.
func issue(template, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	template.SerialNumber = serial
	if parent == nil {
		parent = template
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("failed to issue %s: %w", template.Subject, err)
	}
	return x509.ParseCertificate(der)
}

// TSA is an RFC 3161 timestamp authority: a self-signed root and a leaf
// whose only extended key usage is timeStamping (critical), answering
// timestamp queries over HTTP (application/timestamp-query).
type TSA struct {
	Root, Leaf *x509.Certificate
	key        *ecdsa.PrivateKey
	// Now is the TSA's clock; nil is time.Now. A test moves it to
	// timestamp a signature in the past.
	Now func() time.Time
}

// oidTimeStamping is id-kp-timeStamping.
var oidTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

// NewTSA makes a timestamp authority valid from notBefore to notAfter.
func NewTSA(notBefore, notAfter time.Time) (*TSA, error) {
	root, rootKey, key, err := newRoot(Subject("ward test TSA root", "ward test"), notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidTimeStamping})
	if err != nil {
		return nil, err
	}
	leaf, err := issue(&x509.Certificate{
		Subject: Subject("ward test TSA", "ward test"), NotBefore: notBefore, NotAfter: notAfter,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
		// RFC 3161: the extended key usage is timeStamping alone, critical
		// (Go writes it non-critical from ExtKeyUsage).
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}, root, &key.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	return &TSA{Root: root, Leaf: leaf, key: key}, nil
}

// maxQuery bounds a timestamp query.
const maxQuery = 64 << 10

// ServeHTTP answers one RFC 3161 timestamp query.
func (t *TSA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxQuery))
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "want a POSTed timestamp query", http.StatusBadRequest)
		return
	}
	resp, err := t.Respond(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/timestamp-reply")
	_, _ = w.Write(resp)
}

// Respond makes the DER response to a DER timestamp query.
func (t *TSA) Respond(query []byte) ([]byte, error) {
	req, err := timestamp.ParseRequest(query)
	if err != nil {
		return nil, fmt.Errorf("not a timestamp query: %w", err)
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	ts := timestamp.Timestamp{
		HashAlgorithm: req.HashAlgorithm, HashedMessage: req.HashedMessage,
		Time: now().UTC().Truncate(time.Second), Accuracy: time.Second, Nonce: req.Nonce,
		Policy:            asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1},
		AddTSACertificate: true,
		Certificates:      []*x509.Certificate{t.Root},
	}
	return ts.CreateResponseWithOpts(t.Leaf, t.key, crypto.SHA256)
}

// Load reads a chain from a PKCS #8 (or SEC 1) ECDSA key and its
// certificate chain file (leaf first, ending in the root), as init writes
// them.
func Load(keyPEM, chainPEM []byte) (*Chain, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("no PEM private key")
	}
	var key *ecdsa.PrivateKey
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("the key is %T, want ECDSA", k)
		}
		key = ek
	} else if key, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
		return nil, fmt.Errorf("not a PKCS #8 or EC private key: %w", err)
	}
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 {
		return nil, fmt.Errorf("the chain has %d certificates, want the leaf and its root", len(certs))
	}
	return &Chain{Leaf: certs[0], Root: certs[1], Key: key}, nil
}
