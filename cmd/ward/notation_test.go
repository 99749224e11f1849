package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/bundle"
	"ward.dev/ward/internal/notarycerts"
	"ward.dev/ward/internal/registrytest"
	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/policies"
)

// ward init --notation makes a Notation test chain and an example policy
// trusting it beside the cosign key: an image signed with notation-go
// from init's key and chain files passes ward test, an unsigned one is
// denied naming Notation.
func TestInitNotation(t *testing.T) {
	dir := initRepo(t, "--notation")
	keyPEM, err := os.ReadFile(filepath.Join(dir, "keys", "notation.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "keys", "notation.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("notation.key mode %v, want 0600", fi.Mode().Perm())
	}
	chainPEM, err := os.ReadFile(filepath.Join(dir, "keys", "notation.crt"))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := notarycerts.Load(keyPEM, chainPEM)
	if err != nil {
		t.Fatal(err)
	}
	host := signtest.Registry(t, false)
	signed := signtest.PushImage(t, host+"/team/app:v1")
	signtest.SignNotation(t, signed, chain, signtest.NotationRegistry{PlainHTTP: true}, signtest.NotationOptions{MediaType: signtest.COSE})
	unsigned := signtest.PushImage(t, host+"/team/other:v1")

	policy := filepath.Join(dir, "policies", "example-image-policy.yaml")
	data, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, policy, strings.Replace(string(data), "registry.example.com/team/**", host+"/team/**", 1))
	writeFile(t, filepath.Join(dir, "tests", "notation-test.yaml"), `apiVersion: policy.ward.dev/v1
kind: PolicyTest
metadata: {name: notation}
spec:
  cases:
  - name: signed with notation is admitted
    object: {apiVersion: v1, kind: Pod, metadata: {name: signed}, spec: {containers: [{name: app, image: "`+signed.String()+`"}]}}
    expect: allowed
  - name: unsigned is denied
    object: {apiVersion: v1, kind: Pod, metadata: {name: unsigned}, spec: {containers: [{name: app, image: "`+unsigned.String()+`"}]}}
    expect: denied
    reason: no Notation signature for
`)
	if out := mustWard(t, "test", dir); !strings.Contains(out, "3 passed, 0 failed") {
		t.Fatalf("output:\n%s", out)
	}
	// A second init does not overwrite the keys.
	if code, _, errOut := ward(t, "init", "--notation", dir); code != 2 || !strings.Contains(errOut, "already has") {
		t.Fatalf("second init: exit %d: %s", code, errOut)
	}
}

// A notation trust store read from a Secret (by reference): ward check
// takes the Secret with -f, says the policy reads from the cluster, and
// verifies with its certificates; a Secret holding another CA denies.
func TestCheckNotationTrustStoreFromSecret(t *testing.T) {
	host := signtest.Registry(t, true)
	chain, other := signtest.NotationChain(t, "release"), signtest.NotationChain(t, "release")
	signed := signtest.PushImage(t, host+"/team/app:v1")
	signtest.SignNotation(t, signed, chain, signtest.NotationRegistry{PlainHTTP: true}, signtest.NotationOptions{})
	tmp := t.TempDir()
	folder := filepath.Join(tmp, "policies")
	writeFile(t, filepath.Join(folder, "notation.yaml"), `apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: notation-from-secret}
spec:
  images: [{glob: "**"}]
  authorities:
  - name: release
    notation:
      trustStore:
        ca: {secretRef: {name: release-ca}}
      trustedIdentities: ["*"]
`)
	app := writeFile(t, filepath.Join(tmp, "app.yaml"), deployment("web", signed.String()))
	secret := func(ca []byte) string {
		return writeFile(t, filepath.Join(t.TempDir(), "secret.yaml"), `apiVersion: v1
kind: Secret
metadata: {name: release-ca, namespace: ward-system}
stringData:
  ca.pem: |
    `+strings.ReplaceAll(strings.TrimSpace(string(ca)), "\n", "\n    ")+"\n")
	}
	code, out, errOut := ward(t, "check", "-f", app, "-f", secret(chain.RootPEM()), "--policies", folder)
	if code != 0 || !strings.Contains(out, "notation.trustStore.ca.secretRef reads Secret release-ca") {
		t.Fatalf("with the Secret: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = ward(t, "check", "-f", app, "-f", secret(other.RootPEM()), "--policies", folder)
	if code != 1 || !strings.Contains(out, "no Notation signature by a trusted identity") {
		t.Fatalf("with another CA: exit %d\n%s%s", code, out, errOut)
	}
}

// The notation CLI against ward, on the real registry (TLS, htpasswd, no
// referrers API): images signed with `notation sign` from the key and
// chain `ward init --notation` made, in both envelope formats, get from
// `ward check` the verdict `notation verify` gives under the equivalent
// trust policy; so do an unsigned image and one signed by another CA.
func TestNotationCLIVerdicts(t *testing.T) {
	notationBin := toolPath(t, "WARD_NOTATION", "hack/notation.sh")
	dir := initRepo(t, "--notation")
	reg := registrytest.Start(t)
	opts := []remote.Option{remote.WithAuth(&authn.Basic{Username: reg.Username, Password: reg.Password}), remote.WithTransport(reg.Transport())}

	// notation's configuration: the init chain's key, another CA's key,
	// and a trust policy equivalent to the example policy's authority.
	config := t.TempDir()
	other := signtest.NotationChain(t, "release")
	otherKey, err := other.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(config, "other.key"), string(otherKey))
	writeFile(t, filepath.Join(config, "other.crt"), string(other.ChainPEM()))
	keys, _ := json.Marshal(map[string]any{"default": "ward-example", "keys": []map[string]string{
		{"name": "ward-example", "keyPath": filepath.Join(dir, "keys", "notation.key"), "certPath": filepath.Join(dir, "keys", "notation.crt")},
		{"name": "other", "keyPath": filepath.Join(config, "other.key"), "certPath": filepath.Join(config, "other.crt")},
	}})
	writeFile(t, filepath.Join(config, "notation", "signingkeys.json"), string(keys))
	chainPEM, err := os.ReadFile(filepath.Join(dir, "keys", "notation.crt"))
	if err != nil {
		t.Fatal(err)
	}
	root := chainPEM[strings.Index(string(chainPEM), "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----\n"):]
	writeFile(t, filepath.Join(config, "notation", "truststore", "x509", "ca", "ward", "root.pem"), string(root))
	writeFile(t, filepath.Join(config, "notation", "trustpolicy.json"), `{"version": "1.0", "trustPolicies": [{"name": "ward", "registryScopes": ["*"],
  "signatureVerification": {"level": "strict"}, "trustStores": ["ca:ward"],
  "trustedIdentities": ["x509.subject: C=US, ST=WA, O=example, CN=release"]}]}`)
	notation := func(args ...string) (string, error) {
		cmd := exec.CommandContext(t.Context(), notationBin, args...)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+config, "SSL_CERT_FILE="+reg.CAFile,
			"NOTATION_USERNAME="+reg.Username, "NOTATION_PASSWORD="+reg.Password)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	images := map[string]name.Digest{}
	for _, tc := range []struct{ name, key, format string }{
		{"jws", "ward-example", "jws"}, {"cose", "ward-example", "cose"}, {"otherca", "other", "jws"}, {"unsigned", "", ""},
	} {
		d := signtest.PushImage(t, reg.Host+"/team/"+tc.name+":v1", opts...)
		images[tc.name] = d
		if tc.key == "" {
			continue
		}
		if out, err := notation("sign", "--key", tc.key, "--signature-format", tc.format, d.String()); err != nil {
			t.Fatalf("notation sign %s: %v\n%s", tc.name, err, out)
		}
	}

	policy := filepath.Join(dir, "policies", "example-image-policy.yaml")
	data, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, policy, strings.Replace(string(data), "registry.example.com/team/**", reg.Host+"/team/**", 1))
	docker := t.TempDir()
	auth, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.Host: map[string]string{"username": reg.Username, "password": reg.Password}}})
	writeFile(t, filepath.Join(docker, "config.json"), string(auth))
	t.Setenv("DOCKER_CONFIG", docker)

	for _, name := range []string{"jws", "cose", "otherca", "unsigned"} {
		t.Run(name, func(t *testing.T) {
			d := images[name]
			out, err := notation("verify", d.String())
			notationOK := err == nil
			app := writeFile(t, filepath.Join(t.TempDir(), "app.yaml"), deployment("web", d.String()))
			code, wout, werr := ward(t, "check", "-f", app, "--policies", filepath.Join(dir, "policies"), "--registry-ca", reg.CAFile, "--cloud-registry-credentials", "none")
			if (code == 0) != notationOK || code > 1 {
				t.Fatalf("notation verify ok=%t:\n%s\nward check exit %d:\n%s%s", notationOK, out, code, wout, werr)
			}
			if want := name == "jws" || name == "cose"; notationOK != want {
				t.Fatalf("notation verify ok=%t, want %t:\n%s", notationOK, want, out)
			}
		})
	}
}

// notationCase is one signature and trust policy on which ward's verdict
// must be `notation verify`'s.
type notationCase struct {
	name string
	// sign signs d (nil: unsigned).
	sign func(d name.Digest)
	// ca and tsa are the trust stores' certificates (tsa nil: no tsa
	// store); identity the trusted identity; verification the
	// signatureVerification object, as JSON (YAML takes it as it is).
	ca, tsa      []byte
	identity     string
	verification string
	want         bool
}

// TestNotationVerdictsMatchTheCLI checks, case by case, that ward's
// verdict on a Notation signature is the notation CLI's under the same
// trust policy: levels, expired certificates, timestamps and
// verifyTimestamp, identities, signature expiry, a tampered envelope.
// Signatures are made with notation-go and notation-core-go (to sign at a
// time in the past), pushed to the real registry.
func TestNotationVerdictsMatchTheCLI(t *testing.T) {
	notationBin := toolPath(t, "WARD_NOTATION", "hack/notation.sh")
	reg := registrytest.Start(t)
	opts := []remote.Option{remote.WithAuth(&authn.Basic{Username: reg.Username, Password: reg.Password}), remote.WithTransport(reg.Transport())}
	push := signtest.NotationRegistry{Transport: reg.Transport(), Username: reg.Username, Password: reg.Password}
	now := time.Now()
	valid := signtest.NotationChain(t, "release")
	expired, signedAt := signtest.NotationExpiredChain(t, "release")
	tsa, tsaURL := signtest.NotationTSA(t)
	tsa.Now = func() time.Time { return signedAt }
	tsaRoot := notarycerts.CertPEM(tsa.Root)
	sign := func(c *notarycerts.Chain, o signtest.NotationOptions) func(name.Digest) {
		return func(d name.Digest) { signtest.SignNotation(t, d, c, push, o, opts...) }
	}
	const release, security = "x509.subject: C=US, ST=WA, O=ward test, CN=release", "x509.subject: C=US, ST=WA, O=ward test, CN=security"
	strict, permissive, audit := `{"level": "strict"}`, `{"level": "permissive"}`, `{"level": "audit"}`
	cases := []notationCase{
		{"valid chain", sign(valid, signtest.NotationOptions{}), valid.RootPEM(), nil, release, strict, true},
		{"COSE", sign(valid, signtest.NotationOptions{MediaType: signtest.COSE}), valid.RootPEM(), nil, release, strict, true},
		{"unsigned", nil, valid.RootPEM(), nil, release, strict, false},
		{"another identity", sign(valid, signtest.NotationOptions{}), valid.RootPEM(), nil, security, strict, false},
		{"another CA", sign(valid, signtest.NotationOptions{}), expired.RootPEM(), nil, release, strict, false},
		{"another CA at audit", sign(valid, signtest.NotationOptions{}), expired.RootPEM(), nil, release, audit, true},
		{"expired, strict", sign(expired, signtest.NotationOptions{SigningTime: signedAt}), expired.RootPEM(), nil, release, strict, false},
		{"expired, permissive", sign(expired, signtest.NotationOptions{SigningTime: signedAt}), expired.RootPEM(), nil, release, permissive, true},
		{"expired, authenticTimestamp logged", sign(expired, signtest.NotationOptions{SigningTime: signedAt}), expired.RootPEM(), nil, release, `{"level": "strict", "override": {"authenticTimestamp": "log"}}`, true},
		{"expired, timestamped", sign(expired, signtest.NotationOptions{SigningTime: signedAt, TSAURL: tsaURL, TSARoot: tsa.Root}), expired.RootPEM(), tsaRoot, release, strict, true},
		{"expired, timestamped, no tsa store", sign(expired, signtest.NotationOptions{SigningTime: signedAt, TSAURL: tsaURL, TSARoot: tsa.Root}), expired.RootPEM(), nil, release, strict, false},
		{"valid, tsa store, no timestamp", sign(valid, signtest.NotationOptions{}), valid.RootPEM(), tsaRoot, release, strict, false},
		{"valid, no timestamp, afterCertExpiry", sign(valid, signtest.NotationOptions{}), valid.RootPEM(), tsaRoot, release, `{"level": "strict", "verifyTimestamp": "afterCertExpiry"}`, true},
		{"expired, no timestamp, afterCertExpiry", sign(expired, signtest.NotationOptions{SigningTime: signedAt}), expired.RootPEM(), tsaRoot, release, `{"level": "strict", "verifyTimestamp": "afterCertExpiry"}`, false},
		{"signature expired", sign(valid, signtest.NotationOptions{SigningTime: now.Add(-10 * time.Minute), Expiry: now.Add(-5 * time.Minute)}), valid.RootPEM(), nil, release, strict, false},
		{"signature expired, expiry logged", sign(valid, signtest.NotationOptions{SigningTime: now.Add(-10 * time.Minute), Expiry: now.Add(-5 * time.Minute)}), valid.RootPEM(), nil, release, `{"level": "strict", "override": {"expiry": "log"}}`, true},
		{"tampered", sign(valid, signtest.NotationOptions{SigningTime: now.Add(-time.Minute), Tamper: true}), valid.RootPEM(), nil, release, audit, false},
	}
	v := imageverify.New(imageverify.WithRootCAs(reg.CAPool))
	kc := staticKeychain{&authn.Basic{Username: reg.Username, Password: reg.Password}}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := signtest.PushImage(t, fmt.Sprintf("%s/cases/case%d:v1", reg.Host, i), opts...)
			if tc.sign != nil {
				tc.sign(d)
			}
			// ward: the authority as a policy author writes it.
			stores := fmt.Sprintf("{ca: {data: %q}", tc.ca)
			if tc.tsa != nil {
				stores += fmt.Sprintf(", tsa: {data: %q}", tc.tsa)
			}
			doc := fmt.Sprintf("apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: case}\nspec:\n  images: [{glob: '**'}]\n  authorities:\n  - name: notation\n    notation:\n      trustStore: %s}\n      trustedIdentities: [%q]\n      signatureVerification: %s\n", stores, tc.identity, tc.verification)
			set, err := policies.Compile([]bundle.Document{{Path: "case.yaml", Data: []byte(doc)}})
			if err != nil {
				t.Fatal(err)
			}
			_, werr := v.Verify(t.Context(), d, set.ImagePolicies()[0].Authorities[0], kc)

			// notation verify: the same trust policy in notation's files.
			config := t.TempDir()
			trustStores := []string{"ca:ward"}
			writeFile(t, filepath.Join(config, "notation", "truststore", "x509", "ca", "ward", "ca.pem"), string(tc.ca))
			if tc.tsa != nil {
				trustStores = append(trustStores, "tsa:ward")
				writeFile(t, filepath.Join(config, "notation", "truststore", "x509", "tsa", "ward", "tsa.pem"), string(tc.tsa))
			}
			policy, _ := json.Marshal(map[string]any{"version": "1.0", "trustPolicies": []map[string]any{{
				"name": "ward", "registryScopes": []string{"*"}, "signatureVerification": json.RawMessage(tc.verification),
				"trustStores": trustStores, "trustedIdentities": []string{tc.identity},
			}}})
			writeFile(t, filepath.Join(config, "notation", "trustpolicy.json"), string(policy))
			cmd := exec.CommandContext(t.Context(), notationBin, "verify", d.String())
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+config, "SSL_CERT_FILE="+reg.CAFile,
				"NOTATION_USERNAME="+reg.Username, "NOTATION_PASSWORD="+reg.Password)
			out, nerr := cmd.CombinedOutput()

			if (werr == nil) != (nerr == nil) || (werr == nil) != tc.want {
				t.Fatalf("want admitted=%t; ward: %v; notation verify: %v\n%s", tc.want, werr, nerr, out)
			}
		})
	}
}

// staticKeychain answers every registry with one credential.
type staticKeychain struct{ auth authn.Authenticator }

// Resolve returns the credential.
func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }
