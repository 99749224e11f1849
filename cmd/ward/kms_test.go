package main

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	awskmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"

	"ward.dev/ward/internal/imagesign"
	"ward.dev/ward/internal/kmstest"
	"ward.dev/ward/internal/signtest"
)

// runMainEnv makes the test binary run ward's main instead of the tests.
const runMainEnv = "WARD_TEST_RUN_MAIN"

// TestMain lets a test run ward in a process of its own (wardProcess), for
// settings Go reads once per process (SSL_CERT_FILE, HTTPS_PROXY).
func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// wardProcess runs ward as its own process with env added to the test's.
func wardProcess(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(withoutCloudCredentials(os.Environ()), runMainEnv+"=1"), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		t.Fatalf("ward %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errOut.String()
}

// withoutCloudCredentials drops the machine's cloud credentials from env,
// so that a provider's chain reaches only the test's stand-ins.
func withoutCloudCredentials(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AZURE_") || strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "VAULT_") ||
			strings.HasPrefix(k, "BAO_") || k == "GOOGLE_APPLICATION_CREDENTIALS" || k == "IDENTITY_ENDPOINT" || k == "MSI_ENDPOINT" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// kmsKeyWorks runs what a team does with a KMS key, through the provider
// linked into ward, in processes of their own with env: make it the dev
// environment's signing key, publish with it (the --key form of publish's
// help), verify the result, and use the same URI as an ImagePolicy key.kms
// for an image the key signed. signer signs the image as `cosign sign
// --key REF` would.
func kmsKeyWorks(t *testing.T, ref string, signer signature.Signer, env []string) {
	t.Helper()
	ward := func(args ...string) (int, string, string) { return wardProcess(t, env, args...) }
	mustWard := func(args ...string) string {
		t.Helper()
		code, out, errOut := ward(args...)
		if code != 0 {
			t.Fatalf("ward %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	dir := initRepo(t, "--envs", "dev")
	if out := mustWard("root", "rotate", "--set", "dev="+ref, dir); !strings.Contains(out, "dev") {
		t.Fatalf("rotate printed %q", out)
	}
	if cfg, _ := os.ReadFile(filepath.Join(dir, "ward.yaml")); !strings.Contains(string(cfg), ref) {
		t.Fatalf("ward.yaml does not list %s:\n%s", ref, cfg)
	}
	if out := mustWard("publish", "--env", "dev", "--key", "dev="+ref, dir); !strings.Contains(out, "published dev v1") {
		t.Fatalf("publish printed %q", out)
	}
	if v := verifiedJSON(t, "--env", "dev", "--root", filepath.Join(dir, "tuf/metadata/1.root.json"), dir); v.Version != 1 {
		t.Fatalf("verified %+v", v)
	}

	host := signtest.Registry(t, true)
	signed := signtest.PushImage(t, host+"/team/app:v1")
	if err := imagesign.SignLegacy(signed, signed, signer); err != nil {
		t.Fatal(err)
	}
	unsigned := signtest.PushImage(t, host+"/team/other:v1")
	tmp := t.TempDir()
	policies := writeFile(t, filepath.Join(tmp, "policies", "kms.yaml"), fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: kms-signed}
spec:
  images: [{glob: "%s/team/**"}]
  authorities:
  - name: release-kms
    key: {kms: %q}
`, host, ref))
	good := writeFile(t, filepath.Join(tmp, "good.yaml"), deployment("web", signed.String()))
	bad := writeFile(t, filepath.Join(tmp, "bad.yaml"), deployment("job", unsigned.String()))
	if code, out, errOut := ward("check", "-f", good, "--policies", filepath.Dir(policies)); code != 0 || !strings.Contains(out, "ALLOWED  Deployment apps/web") {
		t.Fatalf("signed with %s: exit %d\n%s%s", ref, code, out, errOut)
	}
	if code, out, errOut := ward("check", "-f", bad, "--policies", filepath.Dir(policies)); code != 1 || !strings.Contains(out, "DENIED   Deployment apps/job") {
		t.Fatalf("unsigned: exit %d\n%s%s", code, out, errOut)
	}
}

// kmsSigner is the provider's signer for ref, as cosign would load it.
func kmsSigner(t *testing.T, ref string, opts ...signature.RPCOption) signature.Signer {
	t.Helper()
	sv, err := kms.Get(t.Context(), ref, crypto.SHA256, opts...)
	if err != nil {
		t.Fatalf("kms.Get(%s): %v", ref, err)
	}
	return sv
}

// startProcess starts a stand-in server and waits, bounded, until addr
// accepts connections; it is stopped when the test ends.
func startProcess(t *testing.T, addr string, env []string, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	// Killed with the test binary, even when -timeout kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logs, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(bin)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logs.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			t.Logf("%s:\n%s", filepath.Base(bin), out)
		}
	})
	for i := 0; i < 200; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := os.ReadFile(logs.Name())
	t.Fatalf("%s did not listen on %s in 10 s:\n%s", bin, addr, out)
}

func toolPath(t *testing.T, env, script string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run `make test`, or export %s=$(%s)", env, env, script)
	}
	return p
}

// AWS KMS through local-kms, the KMS emulator: the issue's own example,
// awskms:///alias/ward-dev, with the endpoint from the AWS SDK's usual
// AWS_ENDPOINT_URL_KMS and credentials from the environment.
func TestKMSProviderAWS(t *testing.T) {
	bin := toolPath(t, "WARD_LOCAL_KMS", "hack/local-kms.sh")
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	startProcess(t, addr, []string{"PORT=" + port, "KMS_DATA_PATH=" + t.TempDir(), "KMS_REGION=eu-west-1", "KMS_ACCOUNT_ID=111122223333"}, bin)
	var env []string
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_KMS":        "http://" + addr,
		"AWS_REGION":                  "eu-west-1",
		"AWS_ACCESS_KEY_ID":           "ward-test",
		"AWS_SECRET_ACCESS_KEY":       "ward-test",
		"AWS_CONFIG_FILE":             filepath.Join(t.TempDir(), "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
		env = append(env, k+"="+v)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := awskms.NewFromConfig(cfg)
	key, err := client.CreateKey(ctx, &awskms.CreateKeyInput{KeySpec: awskmstypes.KeySpecEccNistP256, KeyUsage: awskmstypes.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if _, err := client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/ward-dev"), TargetKeyId: key.KeyMetadata.KeyId}); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	ref := "awskms:///alias/ward-dev"
	kmsKeyWorks(t, ref, kmsSigner(t, ref), env)
}

// Azure Key Vault through its SDK, the vault reached through an HTTPS
// proxy to a loopback stand-in and the token from a managed-identity
// endpoint, as on App Service.
func TestKMSProviderAzure(t *testing.T) {
	az := kmstest.StartAzure(t)
	kmsKeyWorks(t, az.Ref, az.Signer, az.Env)
	calls := az.Calls()
	if calls["token"] == 0 || calls["sign"] == 0 || calls["get"] == 0 || calls["verify"] == 0 {
		t.Fatalf("the Key Vault stand-in saw %v: want a token, the key, a signing and a verification", calls)
	}
}

// Every cloud provider is linked into ward: a key of each kind is handed
// to its provider's client (which fails here on purpose: a key the service
// does not have, or no server, or no credentials), never to a
// sigstore-kms-<name> plugin program.
func TestKMSProvidersLinked(t *testing.T) {
	az := kmstest.StartAzure(t)
	// A server that answers every request 503: the AWS and Vault clients
	// reach it and say so.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "ward test: down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	env := append([]string{
		"GOOGLE_APPLICATION_CREDENTIALS=" + filepath.Join(t.TempDir(), "none.json"),
		"VAULT_ADDR=" + down.URL, "VAULT_TOKEN=none",
		"AWS_ENDPOINT_URL_KMS=" + down.URL, "AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=x", "AWS_MAX_ATTEMPTS=1",
	}, az.Env...)
	for _, tc := range []struct{ ref, says string }{
		{"awskms:///alias/ward-dev", "StatusCode: 503"},
		{"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "none.json: no such file"},
		{strings.TrimSuffix(az.Ref, "/dev") + "/missing", "KeyNotFound"},
		{"hashivault://ward-dev", "503"},
		{"openbao://ward-dev", "503"},
	} {
		t.Run(strings.SplitN(tc.ref, ":", 2)[0], func(t *testing.T) {
			dir := initRepo(t, "--envs", "dev")
			code, _, errOut := wardProcess(t, env, "publish", "--env", "dev", "--key", "dev="+tc.ref, dir)
			if code != 2 || !strings.Contains(errOut, "failed to load KMS key "+tc.ref) || !strings.Contains(errOut, tc.says) {
				t.Fatalf("exit %d, stderr %q: want the provider's own error (%q)", code, errOut, tc.says)
			}
		})
	}
}

// HashiCorp Vault's transit engine, on a real Vault dev server
// (hack/vault.sh), through sigstore's hashivault provider with VAULT_ADDR
// and VAULT_TOKEN as a team sets them.
func TestKMSProviderVault(t *testing.T) {
	bin := toolPath(t, "WARD_VAULT", "hack/vault.sh")
	addr := freePort(t)
	const token = "ward-test-root"
	startProcess(t, addr, []string{"HOME=" + t.TempDir(), "VAULT_DISABLE_MLOCK=true"}, bin,
		"server", "-dev", "-dev-root-token-id="+token, "-dev-listen-address="+addr, "-dev-no-store-token")
	t.Setenv("VAULT_ADDR", "http://"+addr)
	t.Setenv("VAULT_TOKEN", token)
	vault := func(path, body string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/v1/"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Vault-Token", token)
		for i := 0; ; i++ {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 300 {
					return
				}
				err = fmt.Errorf("%s: %s", resp.Status, msg)
			}
			// The dev server listens before it is unsealed: a few tries.
			if i == 50 {
				t.Fatalf("vault %s: %v", path, err)
			}
			time.Sleep(100 * time.Millisecond)
			req.Body = io.NopCloser(strings.NewReader(body))
		}
	}
	vault("sys/mounts/transit", `{"type":"transit"}`)
	vault("transit/keys/ward-dev", `{"type":"ecdsa-p256"}`)
	ref := "hashivault://ward-dev"
	kmsKeyWorks(t, ref, kmsSigner(t, ref), []string{"VAULT_ADDR=http://" + addr, "VAULT_TOKEN=" + token})
}
