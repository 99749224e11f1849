package convert

import (
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"ward.dev/ward/bundle"
	"ward.dev/ward/internal/notarycerts"
	"ward.dev/ward/policies"
)

const testKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZxAfzrQG1EbWyCI8LiSB7YgSFXoI
FNGTyQGKHFc6/H8TQumT9VLS78pUwtv3w7EfKoyFZoP32KrO7nzUy2q6Cw==
-----END PUBLIC KEY-----`

func indented(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// Kyverno policies modelled on Kyverno's documentation (verify-images
// samples): keys, keyless, attestations with conditions, and what cannot
// be converted.
func TestKyverno(t *testing.T) {
	keyPolicy := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-image
spec:
  validationFailureAction: Enforce
  background: false
  webhookTimeoutSeconds: 30
  failurePolicy: Fail
  rules:
    - name: check-image
      match:
        any:
        - resources:
            kinds:
              - Pod
      verifyImages:
      - imageReferences:
        - "ghcr.io/kyverno/test-verify-image*"
        mutateDigest: true
        attestors:
        - count: 1
          entries:
          - keys:
              publicKeys: |-
` + indented(testKey, 16) + `
              rekor:
                ignoreTlog: true
`
	keyless := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-image-keyless
spec:
  validationFailureAction: Audit
  rules:
    - name: check-image-keyless
      match:
        any:
        - resources:
            kinds: [Pod]
            namespaces: [prod, staging]
      verifyImages:
      - imageReferences:
        - "ghcr.io/myorg/*"
        attestors:
        - entries:
          - keyless:
              subject: "https://github.com/myorg/*/.github/workflows/release.yaml@refs/tags/*"
              issuer: "https://token.actions.githubusercontent.com"
              rekor:
                url: https://rekor.sigstore.dev
`
	attest := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-slsa-attestations
spec:
  validationFailureAction: Enforce
  rules:
    - name: check-builder-id
      match:
        any:
        - resources:
            kinds: [Pod]
      verifyImages:
      - imageReferences:
        - "registry.example.com/*"
        attestations:
        - predicateType: https://slsa.dev/provenance/v0.2
          attestors:
          - entries:
            - keys:
                publicKeys: |-
` + indented(testKey, 18) + `
                rekor: {ignoreTlog: true}
          conditions:
          - all:
            - key: "{{ builder.id }}"
              operator: Equals
              value: "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.*"
            - key: "{{ invocation.configSource.\"entryPoint\" }}"
              operator: In
              value: [".github/workflows/release.yml", ".github/workflows/build.yml"]
`
	for _, tc := range []struct {
		name, doc string
		want      []string // in the converted documents
		notes     []string // in the notes
		skipped   bool
	}{
		{"key", keyPolicy, []string{"mode: enforce", "glob: ghcr.io/kyverno/test-verify-image*", "glob: ghcr.io/kyverno/test-verify-image*/**", "BEGIN PUBLIC KEY"}, nil, false},
		{"keyless public good", keyless, []string{"mode: audit", "glob: ghcr.io/myorg/**", "trustRootRef: sigstore-public-good", `subjectRegExp: ^https://github\.com/myorg/.*/\.github/workflows/release\.yaml@refs/tags/.*$`, "namespaces:\n    - prod\n    - staging"},
			[]string{"requires: in.yaml: check-image-keyless/check-image-keyless: TrustRoot sigstore-public-good"}, false},
		{"attestation conditions", attest, []string{"predicateType: https://slsa.dev/provenance/v0.2", `predicate.builder.id.matches(`, `predicate.invocation.configSource.entryPoint in [".github/workflows/release.yml", ".github/workflows/build.yml"]`}, nil, false},
		{"tag-specific", strings.Replace(keyPolicy, `"ghcr.io/kyverno/test-verify-image*"`, `"ghcr.io/kyverno/app:v1.2"`, 1), nil, []string{`names tag "v1.2"`}, true},
		{"notary with keys", strings.Replace(keyPolicy, "      - imageReferences:", "      - type: Notary\n        imageReferences:", 1), nil, []string{"a Notary attestor takes certificates"}, true},
		{"JMESPath function", strings.Replace(attest, `"{{ builder.id }}"`, `"{{ length(materials) }}"`, 1), nil, []string{"is not a plain path"}, true},
		{"mutateDigest false", strings.Replace(keyPolicy, "mutateDigest: true", "mutateDigest: false", 1), []string{"mode: enforce"}, []string{"converted, stricter: in.yaml: check-image/check-image: mutateDigest: false"}, false},
		{"private Rekor without key", strings.Replace(keyPolicy, "ignoreTlog: true", "url: https://rekor.internal", 1), nil, []string{"rekor.url https://rekor.internal without rekor.pubkey"}, true},
		{"not Kyverno", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", nil, []string{"is not a Kyverno ClusterPolicy"}, true},
		{"annotations the signature must carry", strings.Replace(keyPolicy, "          - keys:", "          - annotations: {env: prod}\n            keys:", 1), nil, []string{"annotations map[env:prod] the signature must carry are not converted"}, true},
		{"mode per namespace", strings.Replace(keyPolicy, "  background: false", "  background: false\n  validationFailureActionOverrides: [{action: Enforce, namespaces: [prod]}]", 1), nil, []string{"validationFailureActionOverrides"}, true},
		{"several match filters", strings.Replace(keyless, "            namespaces: [prod, staging]", "            namespaces: [prod, staging]\n        - resources:\n            kinds: [Deployment]", 1), []string{"mode: audit"}, []string{"match has 2 filters: not converted, every object in every namespace is checked"}, false},
		{"ordered comparison of text", strings.Replace(attest, "operator: Equals", "operator: GreaterThan", 1), nil, []string{"compares quantities, durations or versions"}, true},
		{"NotIn", strings.Replace(attest, "operator: In", "operator: AnyNotIn", 1), nil, []string{"condition operator AnyNotIn is not converted"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Kyverno("in.yaml", []byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			var all strings.Builder
			for _, o := range res.Outputs {
				all.Write(o.Data)
				var doc policies.ImagePolicyDoc
				if err := yaml.UnmarshalStrict(o.Data, &doc); err != nil {
					t.Fatalf("output is not an ImagePolicy: %v", err)
				}
				for _, a := range doc.Spec.Authorities {
					for _, at := range a.Attestations {
						if at.Policy != nil {
							all.WriteString("\n" + at.Policy.Data + "\n")
						}
					}
				}
			}
			var notes []string
			for _, n := range res.Notes {
				notes = append(notes, n.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(all.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, all.String())
				}
			}
			for _, w := range tc.notes {
				if !strings.Contains(strings.Join(notes, "\n"), w) {
					t.Errorf("notes lack %q: %q", w, notes)
				}
			}
			if res.Skipped() != tc.skipped {
				t.Errorf("skipped = %t, want %t: %q", res.Skipped(), tc.skipped, notes)
			}
			if tc.skipped && len(res.Outputs) > 0 {
				t.Errorf("a skipped entry still gave %d documents", len(res.Outputs))
			}
		})
	}
}

// kubectl get clusterpolicies -o yaml gives a List.
func TestKyvernoList(t *testing.T) {
	doc := `apiVersion: v1
kind: List
items:
- apiVersion: kyverno.io/v1
  kind: ClusterPolicy
  metadata: {name: a}
  spec:
    validationFailureAction: Enforce
    rules:
    - name: r
      verifyImages:
      - imageReferences: ["ghcr.io/org/*"]
        attestors:
        - entries:
          - keys:
              publicKeys: |-
` + indented(testKey, 16) + `
              rekor: {ignoreTlog: true}
`
	res, err := Kyverno("list.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 1 || res.Skipped() || res.Outputs[0].Name != "a-r" {
		t.Fatalf("outputs %d, notes %v", len(res.Outputs), res.Notes)
	}
}

// Kyverno's Notary verifyImages (its documentation's sample: the signing
// CA's certificate as the attestor) converts to a notation authority with
// Kyverno's trust policy: the certificates as a ca store, any identity,
// level strict; the result compiles.
func TestKyvernoNotary(t *testing.T) {
	now := time.Now()
	chain, err := notarycerts.NewChain(notarycerts.Subject("release", "acme"), now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	doc := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: check-image-notary}
spec:
  validationFailureAction: Enforce
  rules:
  - name: verify-signature-notary
    match:
      any:
      - resources: {kinds: [Pod]}
    verifyImages:
    - type: Notary
      imageReferences: ["ghcr.io/kyverno/test-verify-image*"]
      attestors:
      - count: 1
        entries:
        - certificates:
            cert: |-
` + indented(strings.TrimSpace(string(chain.RootPEM())), 14) + "\n"
	res, err := Kyverno("in.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped() || len(res.Outputs) != 1 {
		t.Fatalf("skipped=%t outputs=%d notes=%v", res.Skipped(), len(res.Outputs), res.Notes)
	}
	out := string(res.Outputs[0].Data)
	for _, want := range []string{"notation:", "trustStore:", "BEGIN CERTIFICATE", "trustedIdentities:", "- '*'"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := policies.Compile([]bundle.Document{{Path: "p.yaml", Data: res.Outputs[0].Data}}); err != nil {
		t.Fatalf("converted policy does not compile: %v\n%s", err, out)
	}
	// A pinned leaf that is neither a CA nor self-signed has no place in a
	// Notation trust store.
	leaf := strings.Replace(doc, indented(strings.TrimSpace(string(chain.RootPEM())), 14), indented(strings.TrimSpace(string(notarycerts.CertPEM(chain.Leaf))), 14), 1)
	if res, err := Kyverno("in.yaml", []byte(leaf)); err != nil || !res.Skipped() {
		t.Fatalf("a pinned leaf converted: %v %v", err, res.Notes)
	}
}
