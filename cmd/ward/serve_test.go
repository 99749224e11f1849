package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
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
	"syscall"
	"testing"
	"time"

	"ward.dev/ward/internal/server"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const strayPod = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"apps","name":"p","operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"docker.io/library/busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}}}}`

func TestServe(t *testing.T) {
	dir := initRepo(t)
	mustWard(t, "publish", "--env", "dev", dir)
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "serve.yaml")
	writeFile(t, cfg, fmt.Sprintf(`apiVersion: ward.dev/v1alpha1
kind: PolicySource
metadata: {name: dev}
spec:
  env: dev
  rootFile: %s
  interval: 1h
  dir: {path: %s}
`, filepath.Join(dir, "tuf", "metadata", "1.root.json"), filepath.Join(dir, "tuf")))
	secret := "a-push-secret-of-some-length"
	writeFile(t, filepath.Join(tmp, "hook.secret"), secret+"\n")
	addr, health := freePort(t), freePort(t)
	serveArgs := []string{"serve", "--config", cfg, "--state-dir", filepath.Join(tmp, "state"), "--addr", addr, "--health-addr", health, "--push-secret-file", filepath.Join(tmp, "hook.secret")}
	stop := serve(t, serveArgs, health)
	defer func() { stop() }()
	client := &http.Client{Timeout: 5 * time.Second}
	caPEM, err := os.ReadFile(filepath.Join(tmp, "state", "tls", "serving.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509Pool(t, caPEM)
	client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}

	validate := func() (bool, string, string) {
		resp, err := client.Post("https://"+addr+"/validate", "application/json", strings.NewReader(strayPod))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ar struct {
			Response struct {
				Allowed          bool                     `json:"allowed"`
				Status           struct{ Message string } `json:"status"`
				AuditAnnotations map[string]string        `json:"auditAnnotations"`
			} `json:"response"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
			t.Fatal(err)
		}
		return ar.Response.Allowed, ar.Response.Status.Message, ar.Response.AuditAnnotations["bundle-version"]
	}
	allowed, msg, version := validate()
	if allowed || version != "1" || !strings.Contains(msg, "no ImagePolicy matches index.docker.io/library/busybox") || !strings.Contains(msg, "dev: dev v1") {
		t.Fatalf("v1: allowed=%t version=%s message=%q", allowed, version, msg)
	}

	// A policy change, published; the push endpoint syncs at once (the
	// interval is an hour).
	writeFile(t, filepath.Join(dir, "policies", "settings.yaml"), "apiVersion: policy.ward.dev/v1\nkind: Settings\nmetadata: {name: defaults}\nspec: {unmatchedImages: allow}\n")
	gitCommit(t, dir, "allow unmatched images")
	mustWard(t, "publish", "--env", "dev", dir)
	body := []byte(`{"ref":"refs/heads/main"}`)
	for _, sig := range []string{"", "sha256=00", server.Sign([]byte("wrong-secret-of-some-length"), body)} {
		req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/hook/dev", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("hook with signature %q: %s", sig, resp.Status)
		}
	}
	push := func() {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/hook/dev", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", server.Sign([]byte(secret), body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("hook: %s", resp.Status)
		}
	}
	push()
	eventually(t, "v2 enforced", func() bool { a, _, v := validate(); return a && v == "2" })

	code, out, errOut := ward(t, "status", "--server", "http://"+health)
	if code != 0 || !strings.Contains(out, "dev (dir ") || !strings.Contains(out, "enforcing, ready") || !strings.Contains(out, "bundle v2 sha256:") {
		t.Fatalf("ward status: exit %d\n%s%s", code, out, errOut)
	}
	checkMetrics(t, health, `ward_bundle_version{env="dev",source="dev"} 2`, `ward_admission_decisions_total{outcome="denied",webhook="validate"}`,
		`ward_policy_swaps_total{source="dev"} 2`, `ward_source_ready{source="dev"} 1`, `ward_source_state{source="dev",state="enforcing"} 1`,
		`ward_trusted_metadata_expiry_seconds{source="dev"}`, `ward_build_info{commit=`, `ward_verification_cache_entries`, "go_goroutines", "process_cpu_seconds_total")

	// A FIFO in place of timestamp.json: the sync is refused at once (not
	// blocked forever), v2 stays enforced, and `ward status` exits 1.
	ts := filepath.Join(dir, "tuf", "metadata", "timestamp.json")
	os.Remove(ts)
	if err := syscall.Mkfifo(ts, 0o644); err != nil {
		t.Fatal(err)
	}
	push()
	eventually(t, "the refusal in status", func() bool {
		code, out, _ := ward(t, "status", "--server", "http://"+health)
		return code == 1 && strings.Contains(out, "enforcing, NOT READY") && strings.Contains(out, "not a regular file")
	})
	if a, _, v := validate(); !a || v != "2" {
		t.Fatal("v2 not enforced after the refusal")
	}

	// A restart from persisted state with the source still broken: the
	// metrics tell the served bundle before any sync succeeds.
	// Profiles are served only with --profiling (this restart has it).
	if code := httpStatus(t, "http://"+health+server.PathPprof); code != http.StatusNotFound {
		t.Fatalf("profiles without --profiling: %d", code)
	}
	stop()
	stop = serve(t, append(serveArgs, "--profiling"), health)
	checkMetrics(t, health, `ward_bundle_version{env="dev",source="dev"} 2`, `ward_source_state{source="dev",state="enforcing"} 1`)
	if code := httpStatus(t, "http://"+health+server.PathPprof+"heap?debug=1"); code != http.StatusOK {
		t.Fatalf("heap profile with --profiling: %d", code)
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// serve runs `ward serve` with args until the returned stop is called, and
// waits until its /readyz (on health) answers 200.
func serve(t *testing.T, args []string, health string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, args, &stdout, &stderr) }()
	eventually(t, "readiness", func() bool {
		resp, err := http.Get("http://" + health + server.PathReadyz)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	stopped := false
	return func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d\n%s", code, stderr.String())
		}
	}
}

// checkMetrics fails the test for each line /metrics lacks.
func checkMetrics(t *testing.T, health string, want ...string) {
	t.Helper()
	resp, err := http.Get("http://" + health + server.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range want {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func TestServeBadInput(t *testing.T) {
	tmp := t.TempDir()
	bad := writeFile(t, filepath.Join(tmp, "bad.yaml"), "apiVersion: ward.dev/v1alpha1\nkind: PolicySource\nmetadata: {name: x}\nspec: {env: dev, root: '{}', dir: {path: /nonexistent}}\n")
	noSource := writeFile(t, filepath.Join(tmp, "nosource.yaml"), "apiVersion: ward.dev/v1alpha1\nkind: PolicySource\nmetadata: {name: x}\nspec: {env: dev, rootFile: r.json}\n")
	state := filepath.Join(tmp, "state")
	for _, args := range [][]string{
		{"serve", "--state-dir", state},
		{"serve", "--state-dir", state, "--config", filepath.Join(tmp, "missing.yaml")},
		{"serve", "--state-dir", state, "--config", bad},
		{"serve", "--state-dir", state, "--config", noSource},
	} {
		code, _, errOut := ward(t, args...)
		if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("ward %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
		}
	}
	code, _, errOut := ward(t, "status", "--server", "http://"+freePort(t))
	if code != 2 || !strings.Contains(errOut, "failed to ask") {
		t.Errorf("status of nothing: exit %d %q", code, errOut)
	}
}

func TestDemo(t *testing.T) {
	code, out, errOut := ward(t, "demo")
	if code != 0 || !strings.Contains(out, "All 9 steps behaved as expected") {
		t.Fatalf("ward demo: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "demo-git-secret") {
		t.Error("the demo printed the Git password")
	}
}

func TestDemoThroughTheAPIServer(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/kube-assets.sh)")
	}
	code, out, errOut := ward(t, "demo", "--apiserver", "--kube-assets", assets)
	if code != 0 || !strings.Contains(out, "All 9 steps behaved as expected") || !strings.Contains(out, "via kube-apiserver") {
		t.Fatalf("ward demo --apiserver: exit %d\n%s%s", code, out, errOut)
	}
}

// selfSigned writes a fresh self-signed certificate for 127.0.0.1 with
// the given serial number, and its key, to certFile and keyFile.
func selfSigned(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "ward"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// The key first: a reader between the two writes sees a mismatch and
	// keeps the certificate it has.
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// With --tls-cert and --tls-key (cert-manager's mounted Secret), a renewed
// certificate is served without a restart.
func TestServeReloadsCertificate(t *testing.T) {
	dir := initRepo(t)
	mustWard(t, "publish", "--env", "dev", dir)
	tmp := t.TempDir()
	cfg := writeFile(t, filepath.Join(tmp, "serve.yaml"), fmt.Sprintf(`apiVersion: ward.dev/v1alpha1
kind: PolicySource
metadata: {name: dev}
spec:
  env: dev
  rootFile: %s
  dir: {path: %s}
`, filepath.Join(dir, "tuf", "metadata", "1.root.json"), filepath.Join(dir, "tuf")))
	certFile, keyFile := filepath.Join(tmp, "tls.crt"), filepath.Join(tmp, "tls.key")
	selfSigned(t, certFile, keyFile, 1)
	addr, health := freePort(t), freePort(t)
	stop := serve(t, []string{"serve", "--config", cfg, "--state-dir", filepath.Join(tmp, "state"), "--addr", addr, "--health-addr", health, "--tls-cert", certFile, "--tls-key", keyFile}, health)
	defer stop()
	served := func() int64 {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the test reads the serial only
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := served(); got != 1 {
		t.Fatalf("serial %d served, want 1", got)
	}
	selfSigned(t, certFile, keyFile, 2)
	eventually(t, "the renewed certificate served", func() bool { return served() == 2 })
}
