package policies

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"ward.dev/ward/bundle"
)

// pcMatch is policy-controller's documented rule, written here without
// ward's code: the glob ("*" any run but "/", "**" any run, "*" and "*/*"
// alone Docker Hub's official and two-segment images, only letters,
// digits and - _ : / * . @) matched against the whole reference as
// go-containerregistry names it, else against the reference as written.
func pcMatch(glob, image string) bool {
	switch glob {
	case "*":
		glob = "index.docker.io/library/*"
	case "*/*":
		glob = "index.docker.io/*/*"
	}
	if !pcValidGlob(glob) {
		return false
	}
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return false
	}
	return pcMatchName(glob, ref.Name(), image)
}

// pcMatchName is pcMatch for a reference already named.
func pcMatchName(glob, full, image string) bool {
	return wildMatch(glob, full) || full != image && wildMatch(glob, image)
}

// pcValidGlob is the reference rule's character check.
func pcValidGlob(g string) bool {
	for _, r := range g {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_:/*.@", r)) {
			return false
		}
	}
	return g != ""
}

// wildMatch matches by recursion, not by a regular expression.
func wildMatch(p, s string) bool {
	switch {
	case p == "":
		return s == ""
	case strings.HasPrefix(p, "**"):
		for i := 0; i <= len(s); i++ {
			if wildMatch(p[2:], s[i:]) {
				return true
			}
		}
		return false
	case p[0] == '*':
		for i := 0; i <= len(s); i++ {
			if wildMatch(p[1:], s[i:]) {
				return true
			}
			if i < len(s) && s[i] == '/' {
				break
			}
		}
		return false
	default:
		return s != "" && p[0] == s[0] && wildMatch(p[1:], s[1:])
	}
}

// policy-controller's own glob test cases (pkg/apis/glob/glob_test.go).
func TestRefGlobPolicyControllerCases(t *testing.T) {
	digest := "sha256:5504f2a95018e3d8a52d80d9e1a128c6ea337581808ff9fe96f5628ce2336350"
	tests := []struct {
		image string
		globs []string
		want  bool
	}{
		{"foo", []string{"index.docker.io/library/foo:latest", "index.docker.io/library/foo:*", "index.docker.io/library/*", "index.docker.io/library/*:latest",
			"index.docker.io/*/*", "index.docker.io/**", "index.docker.**", "inde**", "**", "foo", "foo*", "foo**", "*"}, true},
		{"myuser/myapp", []string{"index.docker.io/myuser/myapp:latest", "index.docker.io/myuser/myapp:*", "index.docker.io/myuser/*",
			"index.docker.io/myuser/*:latest", "index.docker.io/*/*", "index.docker.io/**", "index.docker.**", "inde**", "**", "myuser/myapp",
			"myuser/myapp*", "myuser/myapp**", "*/*"}, true},
		{"ghcr.io/foo/bar", []string{"ghcr.io/*/*", "ghcr.io/**"}, true},
		{"ghcr.io/foo", []string{"ghcr.io/**", "ghc**", "**", "*/**", "ghcr.io/foo*", "ghcr.io/foo**"}, true},
		{"ghcr.io/foo", []string{"ghcr.io/*/*"}, false},
		{"prefix-ghcr.io/foo", []string{"ghcr.io/foo"}, false},
		{"ghcr.io/foo-suffix", []string{"ghcr.io/foo"}, false},
		{"ghcrxio/foo", []string{"ghcr.io/**"}, false},
		{"ghcr.io/foo@" + digest, []string{"ghcr.io/foo@" + digest}, true},
		{"ghcr.io/foo@" + digest, []string{"ghcr.io/foo", "ghcr.io/foo:*"}, false},
		{"registry.example.com/team/demo-app:v1", []string{"**demo**", "registry.example.com/team/*-app:*"}, true},
	}
	for _, tc := range tests {
		for _, g := range tc.globs {
			t.Run(tc.image+" "+g, func(t *testing.T) {
				set := mustCompileCIPs(t, []string{g})
				img, err := ParseImage(tc.image)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(set.MatchImage(img, Subject{Kind: "Pod", Resource: "pods", Version: "v1"})) == 1; got != tc.want {
					t.Fatalf("match = %t, want %t", got, tc.want)
				}
				if pcMatch(g, tc.image) != tc.want {
					t.Fatalf("the reference rule disagrees with policy-controller's test")
				}
			})
		}
	}
	for _, g := range []string{"[a-z]*", ".+", "a?b", "has space", ""} {
		if _, _, err := compileRefGlob(g); err == nil {
			t.Errorf("glob %q compiled; policy-controller refuses it", g)
		}
	}
}

func mustCompileCIPs(tb testing.TB, globs []string) *Set {
	tb.Helper()
	docs := make([]bundle.Document, len(globs))
	for i, g := range globs {
		docs[i] = bundle.Document{Path: fmt.Sprintf("policies/c%d.yaml", i), Data: []byte(fmt.Sprintf(
			"apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: c%d}\nspec:\n  images: [{glob: %q}]\n  authorities: [{static: {action: pass}}]\n", i, g))}
	}
	set, err := Compile(docs)
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// Thousands of generated globs against hundreds of generated references:
// the index (literal-prefix trie plus expressions) finds exactly the
// policies the reference rule says match, for every reference.
func TestRefGlobEquivalence(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hosts := []string{"ghcr.io", "index.docker.io", "docker.io", "registry-1.docker.io", "localhost:5000", "reg.example.com", "reg.example.com:443", "localhost", "Reg.Example.com"}
	words := []string{"library", "foo", "bar", "demo", "demo-app", "team", "app", "x1", "my_user", "nginx"}
	tags := []string{"", ":latest", ":v1", ":1.2.3", "@sha256:" + strings.Repeat("ab", 32), ":v1@sha256:" + strings.Repeat("cd", 32)}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	wild := func() string {
		switch rng.IntN(10) {
		case 0:
			return "*"
		case 1:
			return "**"
		case 2:
			return pick(words) + "*"
		case 3:
			return "*" + pick(words)[:1] + "*"
		case 4:
			return "**" + pick(words)[:2] + "**"
		default:
			return pick(words)
		}
	}
	var images []string
	for len(images) < 400 {
		var segs []string
		if rng.IntN(3) > 0 {
			segs = append(segs, pick(hosts))
		}
		for range 1 + rng.IntN(3) {
			segs = append(segs, pick(words))
		}
		images = append(images, strings.Join(segs, "/")+pick(tags))
	}
	var globs []string
	for len(globs) < 3000 {
		var segs []string
		switch rng.IntN(4) {
		case 0: // no host
		case 1:
			segs = append(segs, wild())
		default:
			segs = append(segs, pick(hosts))
		}
		for range 1 + rng.IntN(3) {
			segs = append(segs, wild())
		}
		g := strings.Join(segs, "/")
		switch rng.IntN(5) {
		case 0:
			g += ":*"
		case 1:
			g += pick(tags)
		case 2:
			g += "**"
		}
		if rng.IntN(50) == 0 {
			g = pick([]string{"*", "*/*", "**"})
		}
		globs = append(globs, g)
	}
	set := mustCompileCIPs(t, globs)
	subj := Subject{Kind: "Pod", Resource: "pods", Version: "v1"}
	// The reference rule's shorthands and character check, once per glob.
	expanded, valid := make([]string, len(globs)), make([]bool, len(globs))
	for i, g := range globs {
		expanded[i], valid[i] = g, pcValidGlob(g)
		switch g {
		case "*":
			expanded[i] = "index.docker.io/library/*"
		case "*/*":
			expanded[i] = "index.docker.io/*/*"
		}
	}
	matched := 0
	for _, image := range images {
		img, err := ParseImage(image)
		if err != nil {
			continue
		}
		var got []string
		for _, p := range set.MatchImage(img, subj) {
			got = append(got, p.Name)
		}
		var want []string
		for i, g := range expanded {
			if valid[i] && pcMatchName(g, img.Name, image) {
				want = append(want, fmt.Sprintf("c%d", i))
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: ward matched %d policies, the reference rule %d; first differences: %v", image, len(got), len(want), diff(got, want))
		}
		matched += len(want)
	}
	if matched < 1000 {
		t.Fatalf("only %d matches across the corpus: the generator does not exercise the index", matched)
	}
	t.Logf("%d globs x %d references, %d matches, no difference", len(globs), len(images), matched)
}

func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, "+"+x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, "-"+x)
		}
	}
	return out[:min(len(out), 5)]
}

// What ward does not load yet is refused by field, never enforced with
// another meaning; what it does load compiles from policy-controller's
// schema unmodified.
func TestClusterImagePolicyCompile(t *testing.T) {
	key := testKeyPEM(t)
	cip := func(version, spec string) string {
		return "apiVersion: policy.sigstore.dev/" + version + "\nkind: ClusterImagePolicy\nmetadata: {name: c}\nspec:\n" + spec
	}
	keyAuth := "  - key:\n      data: |\n" + indent(key, 8) + "\n"
	tests := []struct {
		name, doc, want string // want "" means it compiles
	}{
		{"key, v1alpha1", cip("v1alpha1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth), ""},
		{"key, v1beta1, warn, match", cip("v1beta1", "  mode: warn\n  match: [{group: apps, version: v1, resource: deployments}]\n  images: [{glob: 'ghcr.io/*/*'}]\n  authorities:\n"+keyAuth), ""},
		{"static with message", cip("v1beta1", "  images: [{glob: '*'}]\n  authorities: [{static: {action: fail, message: no}}]\n"), ""},
		{"signatureFormat bundle", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth+"    signatureFormat: bundle\n"), ""},
		{"bad glob", cip("v1beta1", "  images: [{glob: 'ghcr.io/[a-z]*'}]\n  authorities:\n"+keyAuth), `spec.images[0].glob: glob "ghcr.io/[a-z]*": only letters`},
		{"audit mode", cip("v1beta1", "  mode: audit\n  images: [{glob: '**'}]\n  authorities:\n"+keyAuth), `spec.mode: is "audit", want enforce or warn`},
		{"bad resource", cip("v1beta1", "  match: [{resource: services}]\n  images: [{glob: '**'}]\n  authorities:\n"+keyAuth), `spec.match[0].resource: is "services"`},
		{"keyless", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n  - keyless: {url: 'https://fulcio.sigstore.dev', identities: [{issuer: i, subject: s}]}\n"), `spec.authorities[0].keyless: neither ca-cert nor trustRootRef: Sigstore's public-good instance is trusted through a TrustRoot "sigstore-public-good" in the bundle, and there is none`},
		{"secretRef", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n  - key: {secretRef: {name: k, namespace: cosign-system}}\n"), ""},
		{"secretRef and data", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n  - key: {secretRef: {name: k}, data: x}\n"), "spec.authorities[0].key: data, kms and secretRef are exclusive"},
		{"secretRef, bad name", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n  - key: {secretRef: {name: K_1}}\n"), "spec.authorities[0].key.secretRef.name: a lowercase RFC 1123 subdomain"},
		{"cue policy", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth+"    attestations: [{name: a, predicateType: spdxjson, policy: {type: cue, remote: {url: 'https://example.com/p.cue'}}}]\n"), "spec.authorities[0].attestations[0].policy.remote: a policy fetched from a URL at admission time is outside the bundle's signatures"},
		{"cue policy", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth+"    attestations: [{name: a, predicateType: spdxjson, policy: {type: cue, data: 'predicate: spdxVersion: \"SPDX-2.3\"'}}]\n"), ""},
		{"bad cue policy", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth+"    attestations: [{name: a, predicateType: spdxjson, policy: {type: cue, data: 'predicate: {'}}]\n"), "spec.authorities[0].attestations[0].policy.data: CUE:"},
		{"spec policy", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth+"  policy: {type: rego, data: 'package sigstore\n\nisCompliant = true'}\n"), ""},
		{"spec policy from a ConfigMap", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth+"  policy: {type: rego, configMapRef: {name: p, key: policy}}\n"), "spec.policy.configMapRef: a policy read from a ConfigMap is outside the bundle's signatures"},
		{"spec policy in another package", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth+"  policy: {type: rego, data: 'package other\n\nisCompliant = true'}\n"), "spec.policy: Rego: the module is package other"},
		{"two sources", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth+"    source: [{oci: a.example.com/s}, {oci: b.example.com/s}]\n"), "spec.authorities[0].source: only a single source is supported"},
		{"source, bad repository", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth+"    source: [{oci: 'Not A Repo'}]\n"), "spec.authorities[0].source.oci: is not a repository"},
		{"source with pull secrets", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n"+keyAuth+"    source: [{oci: registry.example.com/sigs, tagPrefix: v2-, signaturePullSecrets: [{name: sigcred}]}]\n"), ""},
		{"unknown field", cip("v1beta1", "  images: [{glob: '**'}]\n  authoritys: []\n"), "spec.authoritys: unknown field"},
		{"TrustRoot remote", "apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: t}\nspec: {remote: {root: eA==, mirror: 'https://tuf.example.com'}}\n", "spec.remote: a TUF mirror read at run time, and nothing here reads it"},
		{"TrustRoot, no keys", "apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: t}\nspec: {}\n", "spec: exactly one of remote, repository and sigstoreKeys"},
		{"TrustRoot, not PEM", "apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: t}\nspec:\n  sigstoreKeys:\n    certificateAuthorities: [{subject: {organization: o, commonName: c}, uri: 'https://fulcio.example.com', certChain: bm90IFBFTQ==}]\n", "certificateAuthorities[0].certChain: no PEM certificates"},
		{"keyless, missing TrustRoot", cip("v1beta1", "  images: [{glob: '**'}]\n  authorities:\n  - keyless: {trustRootRef: nowhere, identities: [{issuer: i, subject: s}]}\n"), `spec.authorities[0].keyless.trustRootRef: no TrustRoot "nowhere" in the bundle`},
		{"wrong group", "apiVersion: policy.ward.dev/v1\nkind: ClusterImagePolicy\nmetadata: {name: c}\nspec: {}\n", `apiVersion: is "policy.ward.dev/v1"; a ClusterImagePolicy is policy.sigstore.dev/v1alpha1 or policy.sigstore.dev/v1beta1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileOne(t, tc.doc)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("does not compile: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// A signaturePullSecrets reference is listed as read from the cluster, and
// a Settings document can refuse it.
func TestClusterReferences(t *testing.T) {
	key := testKeyPEM(t)
	doc := "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: c}\nspec:\n  images: [{glob: '**'}]\n  authorities:\n  - name: signed\n    key:\n      data: |\n" + indent(key, 8) +
		"\n    source: [{oci: registry.example.com/sigs, signaturePullSecrets: [{name: sigcred}, {name: other}]}]\n"
	set, err := compileOne(t, doc)
	if err != nil {
		t.Fatal(err)
	}
	refs := set.ClusterReferences()
	want := `policies/p0.yaml: ClusterImagePolicy "c", authority signed: source.signaturePullSecrets reads Secrets sigcred, other of the admitted workload's namespace`
	if len(refs) != 1 || !strings.HasPrefix(refs[0].String(), want) {
		t.Fatalf("references = %v, want one starting %q", refs, want)
	}
	_, err = compileOne(t, doc, "apiVersion: policy.ward.dev/v1\nkind: Settings\nmetadata: {name: strict}\nspec: {clusterReferences: refuse}\n")
	if err == nil || !strings.Contains(err.Error(), `source.signaturePullSecrets: authority signed reads Secrets sigcred, other`) || !strings.Contains(err.Error(), `Settings "strict" refuses cluster references`) {
		t.Fatalf("err = %v, want the reference refused", err)
	}
}
