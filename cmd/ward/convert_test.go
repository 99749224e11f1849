package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ward.dev/ward/internal/signtest"
)

// Kyverno verifyImages rules, converted by ward convert, give Kyverno's
// verdicts through ward check: a key, keyless against the public-good
// instance (a virtual Sigstore's trusted root imported as the TrustRoot the
// converted documents name), and a provenance attestation with a condition.
func TestConvertKyverno(t *testing.T) {
	const (
		issuer  = "https://token.actions.githubusercontent.com"
		subject = "https://github.com/myorg/app/.github/workflows/release.yaml@refs/tags/v1.0.0"
	)
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	s := signtest.NewSigstore(t)
	keySigned := signtest.PushImage(t, host+"/keyed/app:v1")
	signtest.SignLegacy(t, keySigned, key)
	keyUnsigned := signtest.PushImage(t, host+"/keyed/other:v1")
	keylessSigned := signtest.PushImage(t, host+"/myorg/app:v1")
	s.SignLegacy(t, keylessSigned, subject, issuer)
	keylessOther := signtest.PushImage(t, host+"/myorg/tool:v1")
	s.SignLegacy(t, keylessOther, "https://github.com/evil/app/.github/workflows/release.yaml@refs/tags/v1.0.0", issuer)
	provenance := func(repo, builder string) string {
		d := signtest.PushImage(t, host+"/"+repo+":v1")
		signtest.AttestBundle(t, d, key, "https://slsa.dev/provenance/v0.2", map[string]any{"builder": map[string]any{"id": builder}})
		return d.String()
	}
	goodBuilder := provenance("built/good", "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.9.0")
	badBuilder := provenance("built/bad", "https://example.com/my-laptop")

	tmp := t.TempDir()
	pemAt := func(n int) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(strings.TrimSpace(key.PEM), "\n", "\n"+pad)
	}
	kyverno := writeFile(t, filepath.Join(tmp, "kyverno.yaml"), `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: verify
spec:
  validationFailureAction: Enforce
  rules:
    - name: keyed
      match:
        any:
        - resources: {kinds: [Pod]}
      verifyImages:
      - imageReferences: ["`+host+`/keyed/*"]
        attestors:
        - entries:
          - keys:
              publicKeys: |-
`+pemAt(16)+`
              rekor: {ignoreTlog: true}
    - name: keyless
      match:
        any:
        - resources: {kinds: [Pod]}
      verifyImages:
      - imageReferences: ["`+host+`/myorg/*"]
        attestors:
        - entries:
          - keyless:
              subject: "https://github.com/myorg/*"
              issuer: "`+issuer+`"
              ctlog: {ignoreSCT: true}
    - name: provenance
      match:
        any:
        - resources: {kinds: [Pod]}
      verifyImages:
      - imageReferences: ["`+host+`/built/*"]
        attestations:
        - predicateType: https://slsa.dev/provenance/v0.2
          attestors:
          - entries:
            - keys:
                publicKeys: |-
`+pemAt(18)+`
                rekor: {ignoreTlog: true}
          conditions:
          - all:
            - key: "{{ builder.id }}"
              operator: Equals
              value: "https://github.com/slsa-framework/slsa-github-generator/*"
`)
	folder := filepath.Join(tmp, "policies")
	code, _, errOut := ward(t, "convert", "-f", kyverno, "-o", folder)
	if code != 0 || !strings.Contains(errOut, "requires: ") {
		t.Fatalf("convert: exit %d\n%s", code, errOut)
	}
	trJSON := s.TrustedRootJSON(t)
	mustWard(t, "trustroot", "import", "--trusted-root", writeFile(t, filepath.Join(tmp, "trusted_root.json"), string(trJSON)), "-o", filepath.Join(folder, "sigstore-public-good.yaml"))
	for _, tc := range []struct {
		image   string
		allowed bool
	}{
		{keySigned.String(), true},
		{keyUnsigned.String(), false},
		{keylessSigned.String(), true},
		{keylessOther.String(), false},
		{goodBuilder, true},
		{badBuilder, false},
	} {
		app := writeFile(t, filepath.Join(tmp, "app.yaml"), deployment("web", tc.image))
		code, out, errOut := ward(t, "check", "-f", app, "--policies", folder)
		if (code == 0) != tc.allowed {
			t.Errorf("%s: exit %d, want allowed=%t\n%s%s", tc.image, code, tc.allowed, out, errOut)
		}
	}
	// Running it again does not overwrite what is there.
	if code, _, errOut := ward(t, "convert", "-f", kyverno, "-o", folder); code != 2 || !strings.Contains(errOut, "exists: not overwritten") {
		t.Fatalf("second run: exit %d, %s", code, errOut)
	}
	os.RemoveAll(folder)
}
