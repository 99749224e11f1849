package policies

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"ward.dev/ward/bundle"
)

func testKeyPEM(t testing.TB) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(p)
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

func imagePolicy(name, glob, keyPEM string) string {
	return fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata:
  name: %s
spec:
  images:
  - glob: %q
  authorities:
  - name: k
    key:
      data: |
%s
`, name, glob, indent(keyPEM, 8))
}

func compileOne(t *testing.T, docs ...string) (*Set, error) {
	t.Helper()
	var in []bundle.Document
	for i, d := range docs {
		in = append(in, bundle.Document{Path: fmt.Sprintf("policies/p%d.yaml", i), Data: []byte(d)})
	}
	return Compile(in)
}

func TestCompileValid(t *testing.T) {
	key := testKeyPEM(t)
	set, err := compileOne(t,
		imagePolicy("team", "registry.example.com/team/**", key)+"---\n# comment only\n---\n"+imagePolicy("nginx", "nginx", key),
		`apiVersion: policy.ward.dev/v1
kind: ValidationPolicy
metadata: {name: no-latest}
spec:
  mode: warn
  match: {kinds: [Deployment]}
  validations:
  - expression: "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))"
    message: no latest tags
`,
		`apiVersion: policy.ward.dev/v1
kind: Settings
metadata: {name: defaults}
spec: {unmatchedImages: allow, exemptNamespaces: [kube-system]}
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(set.ImagePolicies()); got != 2 {
		t.Fatalf("image policies = %d, want 2", got)
	}
	if got := set.ImagePolicies()[1].Globs[0]; got != "index.docker.io/library/nginx" {
		t.Errorf("normalised glob = %q", got)
	}
	if !set.Settings().AllowUnmatched || !set.Exempt("kube-system") || set.Exempt("default") {
		t.Errorf("settings not applied: %+v", set.Settings())
	}
	vp := set.MatchValidation(Subject{Kind: "Deployment"})
	if len(vp) != 1 || vp[0].Mode != ModeWarn {
		t.Fatalf("validation policies for Deployment = %v", vp)
	}
	if len(set.MatchValidation(Subject{Kind: "Pod"})) != 0 {
		t.Error("validation policy for Deployments matched a Pod")
	}
	fp := set.ImagePolicies()[0].Authorities[0].Fingerprint
	if fp != set.ImagePolicies()[1].Authorities[0].Fingerprint || !strings.HasPrefix(fp, "sha256:") {
		t.Errorf("same key gave fingerprints %q and %q", fp, set.ImagePolicies()[1].Authorities[0].Fingerprint)
	}
}

func TestCompileErrorsNameFileDocumentAndField(t *testing.T) {
	key := testKeyPEM(t)
	tests := []struct {
		name, doc, want string
	}{
		{"wrong apiVersion", "apiVersion: v1\nkind: ImagePolicy\nmetadata: {name: a}\n", `policies/p0.yaml: document 1 (ImagePolicy "a"): apiVersion: is "v1", want "policy.ward.dev/v1"`},
		{"unknown kind", "apiVersion: policy.ward.dev/v1\nkind: Foo\nmetadata: {name: a}\n", `kind: is "Foo"`},
		{"unknown field", strings.Replace(imagePolicy("a", "x/**", key), "  images:", "  imagez: []\n  images:", 1), `policies/p0.yaml:6: document 1 (ImagePolicy "a"): spec.imagez: unknown field`},
		{"unknown nested field, second document", "# a comment\n---\n" + strings.Replace(imagePolicy("a", "x/**", key), "    key:", "    key:\n      dta: x", 1),
			`policies/p0.yaml:13: document 1 (ImagePolicy "a"): spec.authorities[0].key.dta: unknown field`},
		{"unknown field in a Settings document", "apiVersion: policy.ward.dev/v1\nkind: Settings\nmetadata: {name: s}\nspec:\n  unmatchedImage: allow\n", `p0.yaml:5: document 1 (Settings "s"): spec.unmatchedImage: unknown field`},
		{"no name", strings.Replace(imagePolicy("a", "x/**", key), "name: a\n", "name: \"\"\n", 1), "metadata.name: is required"},
		{"bad key", strings.Replace(imagePolicy("a", "x/**", key), "BEGIN PUBLIC KEY", "BEGIN NONSENSE", 1), `(ImagePolicy "a"): spec.authorities[0].key.data: not a PEM public key`},
		{"glob with digest", imagePolicy("a", "x/y@sha256:abc", key), "spec.images[0].glob: glob \"x/y@sha256:abc\": globs match repositories"},
		{"glob with tag", imagePolicy("a", "reg.io/y:1.0", key), "a tag is not part of the match"},
		{"bad mode", strings.Replace(imagePolicy("a", "x/**", key), "spec:\n", "spec:\n  mode: block\n", 1), `spec.mode: is "block"`},
		{"threshold too high", strings.Replace(imagePolicy("a", "x/**", key), "spec:\n", "spec:\n  threshold: 2\n", 1), "spec.threshold: is 2, want 1 to 1"},
		{"two authority kinds", strings.Replace(imagePolicy("a", "x/**", key), "  - name: k\n", "  - name: k\n    static: {action: pass}\n", 1), "exactly one of key, keyless, notation and static"},
		{"bad kind in match", strings.Replace(imagePolicy("a", "x/**", key), "spec:\n", "spec:\n  match: {kinds: [Service]}\n", 1), `spec.match.kinds[0]: is "Service"`},
		{"bad CEL", "apiVersion: policy.ward.dev/v1\nkind: ValidationPolicy\nmetadata: {name: v}\nspec:\n  validations:\n  - expression: 'object.('\n", "spec.validations[0].expression: CEL: "},
		{"CEL not bool", "apiVersion: policy.ward.dev/v1\nkind: ValidationPolicy\nmetadata: {name: v}\nspec:\n  validations:\n  - expression: '1 + 2'\n", "returns int, want bool"},
		{"not yaml", "\t: : [", "not a policy document"},
		{"keyless without ctlog", "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: a}\nspec:\n  images: [{glob: 'x/**'}]\n  authorities:\n  - keyless:\n      ignoreSCTUnsafe: true\n      identities: [{issuer: i, subject: s}]\n", "spec.authorities[0].ctlog: is required for keyless"},
		{"attestation policy type", strings.Replace(imagePolicy("a", "x/**", key), "  - name: k\n", "  - name: k\n    attestations: [{name: sbom, predicateType: https://spdx.dev/Document, policy: {type: wasm, data: x}}]\n", 1), `policy.type: is "wasm", want cel, cue or rego`},
		{"bad rego", strings.Replace(imagePolicy("a", "x/**", key), "  - name: k\n", "  - name: k\n    attestations: [{name: sbom, predicateType: https://spdx.dev/Document, policy: {type: rego, data: x}}]\n", 1), `policy.data: Rego: line 1: package expected`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileOne(t, tc.doc)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *CompileError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", err)
			}
		})
	}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	bad := "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: a}\nspec: {mode: x}\n"
	_, err := compileOne(t, bad, bad)
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatal(err)
	}
	// mode, images and authorities in each of two files, plus the duplicate name.
	if len(ce.Errs) != 7 {
		t.Fatalf("got %d problems, want 7: %v", len(ce.Errs), ce.Errs)
	}
	if !strings.Contains(err.Error(), "and 4 more") {
		t.Errorf("summary = %q", err)
	}
}

func TestCompileRefusesSameSignerTwiceUnderThreshold(t *testing.T) {
	key := testKeyPEM(t)
	doc := strings.Replace(imagePolicy("a", "x/**", key), "spec:\n", "spec:\n  threshold: 2\n", 1)
	doc += "  - name: k2\n    key:\n      data: |\n" + indent(key, 8) + "\n"
	_, err := compileOne(t, doc)
	if err == nil || !strings.Contains(err.Error(), "same signer") {
		t.Fatalf("err = %v, want same signer refused", err)
	}
}

func TestMatchImage(t *testing.T) {
	key := testKeyPEM(t)
	set, err := compileOne(t,
		imagePolicy("team", "registry.example.com/team/**", key),
		imagePolicy("one-level", "registry.example.com/*", key),
		imagePolicy("nginx", "nginx", key),
		imagePolicy("library", "library/*", key),
		imagePolicy("any-example", "*.example.com/**", key),
		imagePolicy("port", "localhost:5000/app?", key),
		strings.Replace(imagePolicy("prod-only", "registry.example.com/team/**", key), "spec:\n", "spec:\n  match: {namespaces: [prod], kinds: [Deployment]}\n", 1),
		strings.Replace(imagePolicy("labelled", "registry.example.com/team/**", key), "spec:\n", "spec:\n  match: {namespaceSelector: {matchLabels: {tier: gold}}}\n", 1),
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		image string
		subj  Subject
		want  []string
	}{
		{"registry.example.com/team/app:1", Subject{Namespace: "dev", Kind: "Pod"}, []string{"team", "any-example"}},
		{"registry.example.com/team/a/b/c@sha256:" + strings.Repeat("a", 64), Subject{Namespace: "prod", Kind: "Deployment"}, []string{"team", "any-example", "prod-only"}},
		{"registry.example.com/team/app", Subject{Namespace: "x", NamespaceLabels: map[string]string{"tier": "gold"}}, []string{"team", "any-example", "labelled"}},
		{"registry.example.com/tool", Subject{}, []string{"one-level", "any-example"}},
		{"registry.example.com/team", Subject{}, []string{"one-level", "any-example"}},
		{"nginx", Subject{}, []string{"nginx", "library"}},
		{"docker.io/library/nginx:1.27", Subject{}, []string{"nginx", "library"}},
		{"index.docker.io/library/redis", Subject{}, []string{"library"}},
		{"someone/nginx", Subject{}, nil},
		{"localhost:5000/app1", Subject{}, []string{"port"}},
		{"localhost:5000/app12", Subject{}, nil},
		{"other.io/team/app", Subject{}, nil},
		// Every spelling of a registry is one registry.
		{"Registry.Example.com/team/app", Subject{}, []string{"team", "any-example"}},
		{"registry.example.com:443/team/app", Subject{}, []string{"team", "any-example"}},
		{"registry-1.docker.io/library/nginx", Subject{}, []string{"nginx", "library"}},
		{"registry-1.docker.io/nginx", Subject{}, []string{"nginx", "library"}},
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			img, err := ParseImage(tc.image)
			if err != nil {
				t.Fatal(err)
			}
			repo := img.Repository
			var got []string
			for _, p := range set.MatchImage(img, tc.subj) {
				got = append(got, p.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(sortedLike(tc.want, set)) {
				t.Errorf("MatchImage(%s) = %v, want %v", repo, got, sortedLike(tc.want, set))
			}
		})
	}
}

// sortedLike orders policy names in bundle order, as MatchImage returns them.
func sortedLike(names []string, set *Set) []string {
	var out []string
	for _, p := range set.ImagePolicies() {
		for _, n := range names {
			if n == p.Name {
				out = append(out, n)
			}
		}
	}
	return out
}

// Globs normalise as images do, so that none escapes or silently matches
// nothing.
func TestGlobNormalisation(t *testing.T) {
	key := testKeyPEM(t)
	tests := []struct {
		glob    string
		matches []string
		misses  []string
	}{
		{"docker.io/**", []string{"evil/app", "nginx", "docker.io/x/y/z"}, []string{"quay.io/x/y"}},
		{"index.docker.io/nginx", []string{"nginx", "docker.io/library/nginx:1"}, []string{"someone/nginx"}},
		{"index.docker.io/*", []string{"nginx", "redis"}, []string{"someone/nginx"}},
		{"nginx*", []string{"nginx", "nginx-unprivileged"}, []string{"someone/nginx"}},
		{"myorg*/app", []string{"myorg/app", "myorgx/app"}, []string{"other/app"}},
		{"*.example.com/**", []string{"a.example.com/x", "B.example.com/x/y"}, []string{"example.com/x"}},
		{"registry.example.com:443/team/**", []string{"registry.example.com/team/a"}, nil},
		{"**", []string{"nginx", "quay.io/a/b"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.glob, func(t *testing.T) {
			set, err := compileOne(t, imagePolicy("p", tc.glob, key))
			if err != nil {
				t.Fatal(err)
			}
			for _, img := range tc.matches {
				ref, err := ParseImage(img)
				if err != nil {
					t.Fatal(err)
				}
				repo := ref.Repository
				if len(set.MatchImage(ref, Subject{})) != 1 {
					t.Errorf("%s (%s) does not match %s (normalised %s)", img, repo, tc.glob, set.ImagePolicies()[0].Globs[0])
				}
			}
			for _, img := range tc.misses {
				ref, _ := ParseImage(img)
				repo := ref.Repository
				if len(set.MatchImage(ref, Subject{})) != 0 {
					t.Errorf("%s (%s) matches %s (normalised %s)", img, repo, tc.glob, set.ImagePolicies()[0].Globs[0])
				}
			}
		})
	}
}

func TestValidationCELCostLimit(t *testing.T) {
	doc := "apiVersion: policy.ward.dev/v1\nkind: ValidationPolicy\nmetadata: {name: v}\nspec:\n  validations:\n  - expression: 'object.items.all(a, object.items.all(b, object.items.all(c, a + b + c >= 0)))'\n"
	set, err := Compile([]bundle.Document{{Path: "p.yaml", Data: []byte(doc)}}, WithCELCostLimit(10_000))
	if err != nil {
		t.Fatal(err)
	}
	items := make([]any, 100)
	for i := range items {
		items[i] = int64(i)
	}
	rule := set.ValidationPolicies()[0].Rules[0]
	_, err = rule.Condition.Eval(t.Context(), map[string]any{"object": map[string]any{"items": items}, "oldObject": nil, "request": map[string]any{}})
	if !errors.Is(err, ErrCELCost) {
		t.Fatalf("err = %v, want ErrCELCost", err)
	}
	ok, err := rule.Condition.Eval(t.Context(), map[string]any{"object": map[string]any{"items": []any{int64(1)}}, "oldObject": nil, "request": map[string]any{}})
	if err != nil || !ok {
		t.Fatalf("small input: %v, %v", ok, err)
	}
}

func FuzzCompile(f *testing.F) {
	key := testKeyPEM(f)
	f.Add([]byte(imagePolicy("a", "registry.example.com/**", key)))
	f.Add([]byte("apiVersion: policy.ward.dev/v1\nkind: ValidationPolicy\nmetadata: {name: v}\nspec:\n  validations:\n  - expression: 'object.x == 1'\n"))
	f.Add([]byte("apiVersion: policy.ward.dev/v1\nkind: Settings\nmetadata: {name: s}\nspec: {unmatchedImages: allow}\n---\n{}\n"))
	f.Add([]byte("apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: c}\nspec:\n  images: [{glob: '**demo**'}, {glob: '*/*'}]\n  match: [{resource: pods, version: '*', selector: {matchLabels: {a: b}}}]\n  authorities: [{static: {action: fail, message: m}}]\n"))
	f.Add([]byte("apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: c}\nspec:\n  images: [{glob: '**'}]\n  authorities:\n  - key: {secretRef: {name: k}}\n    source: [{oci: r.example.com/s, signaturePullSecrets: [{name: p}]}]\n    attestations: [{name: a, predicateType: custom, policy: {type: cue, data: 'predicate: Data: \"x\"'}}]\n  policy: {type: rego, data: \"package sigstore\\nisCompliant = true\", includeSpec: true}\n"))
	f.Add([]byte("apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: t}\nspec: {repository: {root: e30=, mirrorFS: H4sIAAAAAAAA/wMAAAAAAAAAAAA=}}\n"))
	ca, _ := notationStore(f)
	f.Add([]byte(notationPolicy("trustStore:\n  ca:\n    data: |\n" + indent(ca, 6) + "\n  tsa: {secretRef: {name: t}}\ntrustedIdentities: [\"x509.subject: C=US, ST=WA, O=acme\"]\nsignatureVerification: {level: permissive, override: {revocation: skip}, verifyTimestamp: afterCertExpiry}\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Compile([]bundle.Document{{Path: "f.yaml", Data: data}})
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) || len(ce.Errs) == 0 {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, p := range set.ImagePolicies() {
			for _, g := range p.Globs {
				set.MatchImage(Image{Repository: g, Name: g, Raw: g}, Subject{})
			}
		}
	})
}
