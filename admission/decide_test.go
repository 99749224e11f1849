package admission_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/internal/signtest"
)

func TestThresholdOfDistinctSigners(t *testing.T) {
	host := signtest.Registry(t, true)
	release, security, other := signtest.NewKey(t), signtest.NewKey(t), signtest.NewKey(t)
	policy := fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: two-of-three}
spec:
  images: [{glob: "%s/**"}]
  threshold: 2
  authorities:
  - name: release
    key: {data: %q}
  - name: security
    key: {data: %q}
  - name: other
    key: {data: %q}
`, host, release.PEM, security.PEM, other.PEM)
	st := admission.NewState(compile(t, policy), admission.Provenance{Version: 3})
	d := admission.NewDecider(imageverify.New())
	one := signtest.PushImage(t, host+"/app:one")
	signtest.SignLegacy(t, one, release)
	signtest.SignBundle(t, one, release) // the same signer twice counts once
	two := signtest.PushImage(t, host+"/app:two")
	signtest.SignLegacy(t, two, release)
	signtest.SignBundle(t, two, security)

	dec, err := d.Decide(t.Context(), st, podRequest(one.String()))
	if err != nil {
		t.Fatal(err)
	}
	if dec.Allowed || !strings.Contains(dec.Message(), "1 of 2 required distinct signers verified") {
		t.Fatalf("one signer: allowed=%t message=%q", dec.Allowed, dec.Message())
	}
	dec, err = d.Decide(t.Context(), st, podRequest(two.String()))
	if err != nil {
		t.Fatal(err)
	}
	if !dec.Allowed || len(dec.Images[0].Signers) != 2 {
		t.Fatalf("two signers: allowed=%t message=%q images=%+v", dec.Allowed, dec.Message(), dec.Images)
	}
}

// Every ImagePolicy that matches an image must pass (AND).
func TestEveryMatchingPolicyMustPass(t *testing.T) {
	host := signtest.Registry(t, true)
	a, b := signtest.NewKey(t), signtest.NewKey(t)
	img := signtest.PushImage(t, host+"/team/app:v1")
	signtest.SignLegacy(t, img, a)
	st := &admission.State{Set: compile(t,
		keyPolicy("team", host+"/team/**", "enforce", a.PEM),
		keyPolicy("everything", host+"/**", "enforce", b.PEM))}
	dec, err := admission.NewDecider(imageverify.New()).Decide(t.Context(), st, podRequest(img.String()))
	if err != nil {
		t.Fatal(err)
	}
	if dec.Allowed || !strings.Contains(dec.Message(), "policy everything") || strings.Contains(dec.Message(), "policy team") {
		t.Fatalf("allowed=%t message=%q", dec.Allowed, dec.Message())
	}
}

func staticPolicy(name, glob, action string) string {
	return fmt.Sprintf("apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: %s}\nspec:\n  images: [{glob: %q}]\n  authorities: [{static: {action: %s}}]\n", name, glob, action)
}

const allowUnmatched = "apiVersion: policy.ward.dev/v1\nkind: Settings\nmetadata: {name: s}\nspec: {unmatchedImages: allow, exemptNamespaces: [tools, kube-system]}\n"

// Sources combine: a deny from any wins; unmatched means matched by none.
func TestCombinedSources(t *testing.T) {
	platform := admission.NewState(compile(t, staticPolicy("base", "reg.example.com/**", "pass"), staticPolicy("no-legacy", "reg.example.com/legacy/**", "fail")), admission.Provenance{Source: "platform", Env: "prod", Version: 4})
	team := admission.NewState(compile(t, staticPolicy("team", "reg.example.com/team/**", "pass"), allowUnmatched), admission.Provenance{Source: "team", Env: "prod", Version: 9})
	st := admission.Combine(platform, team)
	d := admission.NewDecider(&countingVerifier{})
	digest := "@sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		image, ns string
		allowed   bool
		message   string
	}{
		{"reg.example.com/team/app" + digest, "apps", true, ""},
		{"reg.example.com/other/app" + digest, "apps", true, ""},
		{"reg.example.com/legacy/app" + digest, "apps", false, "policy no-legacy (platform: prod v4), authority authority-0: static fail"},
		{"other.example.com/app" + digest, "apps", false, "no ImagePolicy matches"},
		{"other.example.com/app" + digest, "tools", false, "no ImagePolicy matches"},
	}
	for _, tc := range tests {
		req := podRequest(tc.image)
		req.Namespace = tc.ns
		dec, err := d.Decide(t.Context(), st, req)
		if err != nil {
			t.Fatal(err)
		}
		if dec.Allowed != tc.allowed || !strings.Contains(dec.Message(), tc.message) {
			t.Errorf("%s in %s: allowed=%t message=%q", tc.image, tc.ns, dec.Allowed, dec.Message())
		}
		if !tc.allowed && !strings.Contains(dec.Message(), "(bundles platform: prod v4, team: prod v9)") {
			t.Errorf("message %q does not name both bundles", dec.Message())
		}
		if got := dec.Annotations()[admission.AnnotationBundleVersion]; got != "4,9" {
			t.Errorf("bundle-version annotation = %q", got)
		}
	}
}

// One signature that satisfies two authorities (a broad identity regexp
// and an exact one) is one signer: a threshold of two is not met.
func TestThresholdCountsSignersNotAuthorities(t *testing.T) {
	policy := fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: two}
spec:
  images: [{glob: "reg.example.com/**"}]
  threshold: 2
  authorities:
  - name: a
    key: {data: %q}
  - name: b
    key: {data: %q}
`, testKey(t), testKey(t))
	st := admission.NewState(compile(t, policy), admission.Provenance{Version: 1})
	v := &countingVerifier{} // reports the same signer for every authority
	dec, err := admission.NewDecider(v).Decide(t.Context(), st, podRequest("reg.example.com/app@sha256:"+strings.Repeat("c", 64)))
	if err != nil {
		t.Fatal(err)
	}
	if dec.Allowed || !strings.Contains(dec.Message(), "1 of 2 required distinct signers verified") {
		t.Fatalf("allowed=%t message=%q", dec.Allowed, dec.Message())
	}
}

// Namespace labels are looked up only for sets that select by them, and
// decide which policies apply.
func TestNamespaceSelector(t *testing.T) {
	doc := strings.Replace(staticPolicy("gold-only", "reg.example.com/**", "fail"), "spec:\n", "spec:\n  match: {namespaceSelector: {matchLabels: {tier: gold}}}\n", 1)
	lookups := 0
	labels := func(_ context.Context, ns string) (map[string]string, error) {
		lookups++
		return map[string]string{"tier": map[string]string{"gold": "gold"}[ns]}, nil
	}
	d := admission.NewDecider(&countingVerifier{}, admission.WithNamespaceLabels(labels))
	st := admission.NewState(compile(t, doc, allowUnmatched), admission.Provenance{Version: 1})
	for ns, allowed := range map[string]bool{"gold": false, "plain": true} {
		req := podRequest("reg.example.com/app@sha256:" + strings.Repeat("a", 64))
		req.Namespace = ns
		dec, err := d.Decide(t.Context(), st, req)
		if err != nil || dec.Allowed != allowed {
			t.Fatalf("%s: allowed=%v err=%v %s", ns, dec.Allowed, err, dec.Message())
		}
	}
	without := admission.NewState(compile(t, staticPolicy("all", "reg.example.com/**", "pass")), admission.Provenance{Version: 1})
	before := lookups
	d.Decide(t.Context(), without, podRequest("reg.example.com/app@sha256:"+strings.Repeat("a", 64)))
	if lookups != before {
		t.Fatal("namespace labels looked up for a set that does not select by them")
	}
}
