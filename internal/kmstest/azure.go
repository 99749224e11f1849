package kmstest

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
)

// Azure is a Key Vault stand-in holding one EC P-256 key, reached as Azure
// is: the Key Vault client's requests to <vault>.vault.azure.net go
// through an HTTPS proxy (HTTPS_PROXY) that ends TLS with a certificate
// from a test CA (SSL_CERT_FILE), and the token comes from an App Service
// managed-identity endpoint (IDENTITY_ENDPOINT). Key Vault's challenge
// (401 with WWW-Authenticate) and the bearer token are checked.
//
// Go reads SSL_CERT_FILE and HTTPS_PROXY once per process: run the
// client in a process of its own with Env.
type Azure struct {
	// Ref is the azurekms:// reference of the key.
	Ref string
	// Env points a process's Azure SDK at the stand-in.
	Env []string
	// Signer signs as the vault's key does.
	Signer signature.Signer

	priv  *ecdsa.PrivateKey
	token string

	mu    sync.Mutex
	calls map[string]int
}

const azureVault = "wardtest.vault.azure.net"

// StartAzure serves the stand-in on loopback until the test ends.
func StartAzure(t testing.TB) *Azure {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	a := &Azure{Ref: "azurekms://" + azureVault + "/dev", Signer: signer, priv: priv, token: "ward-test-token", calls: map[string]int{}}
	caPEM, leaf := testCA(t, azureVault)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	vault := &http.Server{Handler: http.HandlerFunc(a.serveVault), ReadHeaderTimeout: 10 * time.Second}
	tunnels := newConnListener()
	go vault.Serve(tunnels)
	proxy := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Host != azureVault+":443" {
			http.Error(w, "this proxy only tunnels to "+azureVault, http.StatusForbidden)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			conn.Close()
			return
		}
		c := tls.Server(bufferedConn{conn, rw.Reader}, &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12})
		select {
		case tunnels.ch <- c:
		case <-tunnels.done:
			conn.Close()
		}
	}))
	identity := serve(t, http.HandlerFunc(a.serveIdentity))
	t.Cleanup(func() { vault.Close(); tunnels.Close() })
	a.Env = []string{
		"SSL_CERT_FILE=" + caFile,
		"HTTPS_PROXY=http://" + proxy, "https_proxy=http://" + proxy, "NO_PROXY=", "no_proxy=",
		"IDENTITY_ENDPOINT=http://" + identity + "/msi/token", "IDENTITY_HEADER=ward-test-header",
	}
	return a
}

// Calls returns how often each Key Vault operation was called.
func (a *Azure) Calls() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]int{}
	for k, v := range a.calls {
		out[k] = v
	}
	return out
}

func (a *Azure) count(op string) {
	a.mu.Lock()
	a.calls[op]++
	a.mu.Unlock()
}

// serveIdentity is App Service's managed-identity token endpoint.
func (a *Azure) serveIdentity(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-IDENTITY-HEADER") != "ward-test-header" {
		http.Error(w, "missing X-IDENTITY-HEADER", http.StatusUnauthorized)
		return
	}
	if res := r.URL.Query().Get("resource"); !strings.HasPrefix(res, "https://vault.azure.net") {
		http.Error(w, "unexpected resource "+res, http.StatusBadRequest)
		return
	}
	a.count("token")
	writeJSON(w, map[string]any{
		"access_token": a.token, "token_type": "Bearer", "resource": "https://vault.azure.net",
		"expires_on": fmt.Sprint(time.Now().Add(time.Hour).Unix()),
	})
}

// serveVault answers Key Vault's get key, sign and verify.
func (a *Azure) serveVault(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "keys" || parts[1] != "dev" {
		writeError(w, http.StatusNotFound, "KeyNotFound", "A key with (name/id) "+r.URL.Path+" was not found in this key vault.")
		return
	}
	kid := "https://" + azureVault + "/keys/dev/1"
	// /keys/dev[/version][/operation]: without a version the SDK asks
	// /keys/dev/sign.
	op := ""
	if last := parts[len(parts)-1]; r.Method == http.MethodPost && (last == "sign" || last == "verify") {
		op = last
	}
	switch {
	case r.Method == http.MethodGet && len(parts) <= 3:
		a.count("get")
		pub := a.priv.PublicKey
		writeJSON(w, map[string]any{
			"key": map[string]any{
				"kid": kid, "kty": "EC", "crv": "P-256", "key_ops": []string{"sign", "verify"},
				"x": b64(pub.X.FillBytes(make([]byte, 32))), "y": b64(pub.Y.FillBytes(make([]byte, 32))),
			},
			"attributes": map[string]any{"enabled": true},
		})
	case op == "sign":
		a.count("sign")
		var req struct{ Alg, Value string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.Alg != "ES256" {
			writeError(w, http.StatusBadRequest, "BadParameter", "want alg ES256")
			return
		}
		digest, err := base64.RawURLEncoding.DecodeString(req.Value)
		if err != nil || len(digest) != sha256.Size {
			writeError(w, http.StatusBadRequest, "BadParameter", "want a SHA-256 digest")
			return
		}
		r, s, err := ecdsa.Sign(rand.Reader, a.priv, digest)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
			return
		}
		// JWS form: r || s, 32 bytes each.
		writeJSON(w, map[string]any{"kid": kid, "value": b64(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))})
	case op == "verify":
		a.count("verify")
		var req struct{ Alg, Digest, Value string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "BadParameter", err.Error())
			return
		}
		digest, err1 := base64.RawURLEncoding.DecodeString(req.Digest)
		sig, err2 := base64.RawURLEncoding.DecodeString(req.Value)
		ok := err1 == nil && err2 == nil && len(sig) == 64 &&
			ecdsa.Verify(&a.priv.PublicKey, digest, new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
		writeJSON(w, map[string]any{"value": ok})
	default:
		writeError(w, http.StatusBadRequest, "BadParameter", r.Method+" "+r.URL.Path)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, kind, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": kind, "message": msg}})
}

// serve runs h on a loopback port until the test ends and returns its
// address.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

// testCA returns a CA's PEM and a certificate it issued for host.
func testCA(t testing.TB, host string) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ward kmstest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// connListener hands connections tunnelled through the proxy to a server.
type connListener struct {
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// bufferedConn reads first what the proxy's reader already buffered.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
