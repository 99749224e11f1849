package registryauth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"ward.dev/ward/registryauth"
)

// unsetCloudEnv clears credentials the machine may have, so that a
// provider's chain reaches only the test's stand-ins.
func unsetCloudEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_SESSION_TOKEN",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "GOOGLE_APPLICATION_CREDENTIALS", "MSI_ENDPOINT"} {
		if v, ok := os.LookupEnv(k); ok {
			os.Unsetenv(k)
			t.Cleanup(func() { os.Setenv(k, v) })
		}
	}
}

func resolve(t *testing.T, kc authn.Keychain, host string) (*authn.AuthConfig, error) {
	t.Helper()
	reg, err := name.NewRegistry(host)
	if err != nil {
		t.Fatal(err)
	}
	a, err := kc.Resolve(reg)
	if err != nil {
		return nil, err
	}
	return authn.Authorization(t.Context(), a)
}

// Amazon ECR through the AWS SDK's ECR client, against a stand-in of ECR's
// GetAuthorizationToken (AWS_ENDPOINT_URL_ECR). The failure is remembered
// for a minute, not asked again for every image.
func TestECR(t *testing.T) {
	var calls, asked atomic.Int32
	ecr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" || !strings.Contains(r.Header.Get("Authorization"), "Credential=AKIDWARDTEST/") {
			http.Error(w, `{"__type":"UnrecognizedClientException"}`, http.StatusBadRequest)
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprintf(w, `{"authorizationData":[{"authorizationToken":%q,"expiresAt":%d,"proxyEndpoint":"https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}]}`,
			base64.StdEncoding.EncodeToString([]byte("AWS:ecr-password")), time.Now().Add(12*time.Hour).Unix())
	}))
	t.Cleanup(ecr.Close)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_ECR": ecr.URL, "AWS_ACCESS_KEY_ID": "AKIDWARDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1", "HOME": t.TempDir(),
	} {
		t.Setenv(k, v)
	}
	unsetCloudEnv(t)
	kc := registryauth.New([]registryauth.Provider{registryauth.AWS})
	for i := 0; i < 2; i++ {
		got, err := resolve(t, kc, "123456789012.dkr.ecr.eu-west-1.amazonaws.com")
		if err != nil {
			t.Fatal(err)
		}
		if got.Username != "AWS" || got.Password != "ecr-password" {
			t.Fatalf("ECR credentials %q/%q", got.Username, got.Password)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("ECR asked %d times for two pulls, want once (cached)", n)
	}
	if got, err := resolve(t, kc, "registry.example.com"); err != nil || got.Username != "" {
		t.Errorf("another registry: %+v, %v; want anonymous", got, err)
	}

	// No credentials: an error that names AWS and the registry, or
	// anonymous where that is asked for; remembered for a minute.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDOTHER")
	before := asked.Load()
	clock := time.Now()
	strict := registryauth.New([]registryauth.Provider{registryauth.AWS}, registryauth.WithClock(func() time.Time { return clock }))
	for i := 0; i < 2; i++ {
		if _, err := resolve(t, strict, "123456789012.dkr.ecr.eu-west-1.amazonaws.com"); err == nil || !strings.Contains(err.Error(), "failed to get aws registry credentials for 123456789012.dkr.ecr.eu-west-1.amazonaws.com") {
			t.Errorf("refused credentials: err = %v", err)
		}
	}
	if got, err := resolve(t, registryauth.OrAnonymous(strict), "123456789012.dkr.ecr.eu-west-1.amazonaws.com"); err != nil || got.Username != "" {
		t.Errorf("OrAnonymous: %+v, %v", got, err)
	}
	if n := asked.Load() - before; n != 1 {
		t.Errorf("ECR asked %d times for three lookups: a failure must be remembered", n)
	}
	clock = clock.Add(61 * time.Second)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDWARDTEST")
	if _, err := resolve(t, strict, "123456789012.dkr.ecr.eu-west-1.amazonaws.com"); err != nil {
		t.Errorf("a minute after the failure, with credentials: %v", err)
	}
}

// Artifact Registry through Application Default Credentials: a service
// account key whose token_uri is a stand-in of Google's token endpoint.
func TestGCP(t *testing.T) {
	var calls atomic.Int32
	token := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"ya29.ward-test","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(token.Close)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))})
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "ward-test", "private_key_id": "k1", "private_key": string(keyPEM),
		"client_email": "ward@ward-test.iam.gserviceaccount.com", "client_id": "1", "token_uri": token.URL + "/token",
	})
	saFile := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(saFile, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	unsetCloudEnv(t)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", saFile)
	kc := registryauth.New([]registryauth.Provider{registryauth.GCP})
	for _, host := range []string{"europe-docker.pkg.dev", "gcr.io", "eu.gcr.io"} {
		got, err := resolve(t, kc, host)
		if err != nil {
			t.Fatal(err)
		}
		if got.Username != "_token" || got.Password != "ya29.ward-test" {
			t.Fatalf("%s: credentials %q/%q", host, got.Username, got.Password)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the token endpoint was asked %d times, want once (the token is reused)", n)
	}
	if got, err := resolve(t, kc, "123456789012.dkr.ecr.eu-west-1.amazonaws.com"); err != nil || got.Username != "" {
		t.Errorf("another cloud's registry: %+v, %v; want anonymous", got, err)
	}

	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
	if _, err := resolve(t, registryauth.New([]registryauth.Provider{registryauth.GCP}), "gcr.io"); err == nil || !strings.Contains(err.Error(), "failed to get gcp registry credentials for gcr.io") {
		t.Errorf("missing credentials: err = %v", err)
	}
}

// Azure Container Registry: a token from the managed-identity endpoint
// (IDENTITY_ENDPOINT, as on App Service) exchanged at the registry's
// /oauth2/exchange, both stand-ins on loopback.
func TestACR(t *testing.T) {
	identity := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-IDENTITY-HEADER") != "ward-test" || r.URL.Query().Get("resource") != "https://management.azure.com" {
			http.Error(w, "bad identity request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"entra-token","token_type":"Bearer","resource":"https://management.azure.com","expires_on":"%d"}`, time.Now().Add(time.Hour).Unix())
	}))
	t.Cleanup(identity.Close)
	var calls atomic.Int32
	registry := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect/oauth2/exchange" {
			http.Redirect(w, r, "/oauth2/exchange", http.StatusTemporaryRedirect)
			return
		}
		if err := r.ParseForm(); err != nil || r.URL.Path != "/oauth2/exchange" || r.Form.Get("grant_type") != "access_token" ||
			r.Form.Get("service") != "ward.azurecr.io" || r.Form.Get("access_token") != "entra-token" {
			http.Error(w, "bad exchange", http.StatusUnauthorized)
			return
		}
		calls.Add(1)
		fmt.Fprint(w, `{"refresh_token":"acr-refresh-token"}`)
	}))
	t.Cleanup(registry.Close)
	unsetCloudEnv(t)
	t.Setenv("IDENTITY_ENDPOINT", identity.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "ward-test")
	kc := registryauth.New([]registryauth.Provider{registryauth.Azure},
		registryauth.WithACREndpoint(func(string) string { return registry.URL }, registry.Client()))
	for i := 0; i < 2; i++ {
		got, err := resolve(t, kc, "ward.azurecr.io")
		if err != nil {
			t.Fatal(err)
		}
		if got.Username != "00000000-0000-0000-0000-000000000000" || got.Password != "acr-refresh-token" {
			t.Fatalf("ACR credentials %q/%q", got.Username, got.Password)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d exchanges for two pulls, want one (cached)", n)
	}
	// A redirect is not followed: the token goes only to the registry.
	redirecting := registryauth.New([]registryauth.Provider{registryauth.Azure},
		registryauth.WithACREndpoint(func(string) string { return registry.URL + "/redirect" }, registry.Client()))
	if _, err := resolve(t, redirecting, "third.azurecr.io"); err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("redirected exchange: err = %v", err)
	}
	// The registry refuses the exchange: an error naming Azure and the
	// registry, with no token in it.
	refusing := registryauth.New([]registryauth.Provider{registryauth.Azure},
		registryauth.WithACREndpoint(func(string) string { return registry.URL + "/refuse" }, registry.Client()))
	_, err := resolve(t, refusing, "other.azurecr.io")
	if err == nil || !strings.Contains(err.Error(), "failed to get azure registry credentials for other.azurecr.io") || strings.Contains(err.Error(), "entra-token") {
		t.Errorf("refused exchange: err = %v", err)
	}
}

// The cache asks again shortly before the credentials expire.
func TestCredentialsRenewedBeforeExpiry(t *testing.T) {
	var calls atomic.Int32
	registry := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprint(w, `{"refresh_token":"r"}`)
	}))
	t.Cleanup(registry.Close)
	identity := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"access_token":"a","token_type":"Bearer","expires_on":"%d"}`, time.Now().Add(time.Hour).Unix())
	}))
	t.Cleanup(identity.Close)
	unsetCloudEnv(t)
	t.Setenv("IDENTITY_ENDPOINT", identity.URL)
	t.Setenv("IDENTITY_HEADER", "x")
	clock := time.Unix(1_000_000, 0)
	kc := registryauth.New([]registryauth.Provider{registryauth.Azure},
		registryauth.WithACREndpoint(func(string) string { return registry.URL }, registry.Client()),
		registryauth.WithClock(func() time.Time { return clock }))
	for _, step := range []struct {
		advance time.Duration
		want    int32
	}{{0, 1}, {50 * time.Minute, 1}, {6 * time.Minute, 2}} {
		clock = clock.Add(step.advance)
		if _, err := resolve(t, kc, "ward.azurecr.io"); err != nil {
			t.Fatal(err)
		}
		if n := calls.Load(); n != step.want {
			t.Fatalf("after %v more: %d exchanges, want %d", step.advance, n, step.want)
		}
	}
}

func TestParseProviders(t *testing.T) {
	for in, want := range map[string]string{"": "[]", "none": "[]", "aws,gcp": "[aws gcp]", "azure, aws,azure": "[azure aws]"} {
		got, err := registryauth.ParseProviders(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("ParseProviders(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := registryauth.ParseProviders("aws,ibm"); err == nil || !strings.Contains(err.Error(), `"ibm"`) {
		t.Errorf("unknown provider: err = %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
