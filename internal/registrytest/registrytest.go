// Package registrytest runs a real OCI registry for integration tests:
// Debian's docker-registry (CNCF distribution) on 127.0.0.1 with TLS from a
// fresh CA and htpasswd basic auth. `make test` installs the package; the
// tests fail (not skip) when it is missing, naming the fix.
package registrytest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"ward.dev/ward/internal/server"

	"golang.org/x/crypto/bcrypt"
)

// Binary is the registry program.
const Binary = "docker-registry"

// Registry is a running registry.
type Registry struct {
	// Host is "127.0.0.1:<port>".
	Host string
	// CAPool trusts the registry's certificate; CAFile holds it as PEM.
	CAPool *x509.CertPool
	CAFile string
	// Username and Password are the only valid credentials.
	Username, Password string
}

// Start runs a registry until the test ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		t.Fatalf("%s is not installed: run `make test` (it installs it) or `apt-get install docker-registry`", Binary)
	}
	dir := t.TempDir()
	r := &Registry{Username: "ward", Password: "s3cret-" + fmt.Sprint(time.Now().UnixNano())}
	if _, _, err := server.SelfSignedCert(dir, []string{"127.0.0.1", "localhost"}); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
	caPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	r.CAPool, r.CAFile = x509.NewCertPool(), certFile
	r.CAPool.AppendCertsFromPEM(caPEM)
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(r.Username+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Host = freeAddr(t)
	config := fmt.Sprintf(`version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}
http: {addr: %s, tls: {certificate: %s, key: %s}}
auth: {htpasswd: {realm: ward-test, path: %s}}
`, filepath.Join(dir, "data"), r.Host, certFile, keyFile, htpasswd)
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgFile)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start %s: %v", Binary, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
	})
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.CAPool}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("https://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("%s did not come up on %s: %v\n%s", Binary, r.Host, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Transport trusts the registry's CA.
func (r *Registry) Transport() http.RoundTripper {
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.CAPool}}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
