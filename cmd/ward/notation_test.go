package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ward.dev/ward/internal/notarycerts"
	"ward.dev/ward/internal/signtest"
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
