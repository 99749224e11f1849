package admission_test

import (
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
	st := &admission.State{Set: compile(t, policy), Provenance: admission.Provenance{Version: 3}}
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
	if dec.Allowed || !strings.Contains(dec.Message(), "1 of 2 required signers verified") {
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
