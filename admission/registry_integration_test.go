package admission_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/internal/notarycerts"
	"ward.dev/ward/internal/registrytest"
	"ward.dev/ward/internal/signtest"
)

// TestRealRegistry runs the webhook against Debian's docker-registry with
// TLS and htpasswd auth. It has no referrers API, so bundles are found
// through the tag-schema fallback. Credentials come from the Pod's image
// pull secret.
func TestRealRegistry(t *testing.T) {
	reg := registrytest.Start(t)
	opts := []remote.Option{remote.WithAuth(&authn.Basic{Username: reg.Username, Password: reg.Password}), remote.WithTransport(reg.Transport())}
	key := signtest.NewKey(t)
	legacy := signtest.PushImage(t, reg.Host+"/team/app:v1", opts...)
	signtest.SignLegacy(t, legacy, key, opts...)
	bundled := signtest.PushImage(t, reg.Host+"/team/tool:v1", opts...)
	signtest.SignBundle(t, bundled, key, opts...)
	unsigned := signtest.PushImage(t, reg.Host+"/team/unsigned:v1", opts...)
	// Signatures kept in another repository (COSIGN_REPOSITORY), read
	// with policy-controller's signaturePullSecrets.
	elsewhere := signtest.PushImage(t, reg.Host+"/elsewhere/app:v1", opts...)
	signtest.SignLegacyIn(t, elsewhere, key, reg.Host+"/signatures", "", opts...)
	noSecret := signtest.PushImage(t, reg.Host+"/nosecret/app:v1", opts...)
	signtest.SignLegacyIn(t, noSecret, key, reg.Host+"/signatures", "", opts...)
	sourced := func(name, glob, secret string) string {
		return fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: %s}
spec:
  images: [{glob: %q}]
  authorities:
  - key:
      data: |
%s
    source:
    - oci: %s/signatures
      signaturePullSecrets: [{name: %s}]
`, name, glob, indentPEM(key.PEM), reg.Host, secret)
	}

	client := pullSecrets(reg, "regcred", "sigcred")
	p := &admission.Policies{}
	p.Store(admission.NewState(compile(t, keyPolicy("team", reg.Host+"/team/**", "enforce", key.PEM),
		sourced("elsewhere", reg.Host+"/elsewhere/**", "sigcred"), sourced("nosecret", reg.Host+"/nosecret/**", "absent")), admission.Provenance{Version: 1}))
	serve := func(v *imageverify.Verifier) *fixture {
		mux := http.NewServeMux()
		admission.NewWebhook(admission.NewDecider(v, admission.WithKeychain(admission.PullSecretKeychain(client))), p).Register(mux)
		srv := httptest.NewTLSServer(mux)
		t.Cleanup(srv.Close)
		return &fixture{srv: srv}
	}
	// A fresh webhook (and cache) per case: verification results are cached
	// by digest and authority, whoever asked.
	trusting := func() *fixture { return serve(imageverify.New(imageverify.WithRootCAs(reg.CAPool))) }
	untrusting := func() *fixture { return serve(imageverify.New()) }
	withSecret := map[string]any{"imagePullSecrets": []any{map[string]any{"name": "regcred"}}}

	tests := []struct {
		name    string
		f       func() *fixture
		images  []string
		extra   map[string]any
		allowed bool
		reason  string
	}{
		{"signed in both formats, by tag: verified but not pinned", trusting, []string{reg.Host + "/team/app:v1", reg.Host + "/team/tool:v1"}, withSecret, false, "verified but not pinned to a digest"},
		{"signed, by digest", trusting, []string{legacy.String(), bundled.String()}, withSecret, true, ""},
		{"unsigned", trusting, []string{unsigned.String()}, withSecret, false, "no signatures found"},
		{"no pull secret", trusting, []string{legacy.String()}, nil, false, "UNAUTHORIZED"},
		{"registry CA not trusted", untrusting, []string{legacy.String()}, withSecret, false, "certificate signed by unknown authority"},
		{"signatures in another repository, read with signaturePullSecrets", trusting, []string{elsewhere.String()}, nil, true, ""},
		{"signaturePullSecrets naming no Secret", trusting, []string{noSecret.String()}, withSecret, false, "UNAUTHORIZED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.f().post(t, admission.PathValidate, review(t, "Deployment", object("Deployment", tc.images, nil, nil, tc.extra)))
			if r.Allowed != tc.allowed {
				t.Fatalf("allowed = %t, want %t: %v", r.Allowed, tc.allowed, r.Result)
			}
			if tc.reason != "" && !strings.Contains(r.Result.Message, tc.reason) {
				t.Errorf("message %q lacks %q", r.Result.Message, tc.reason)
			}
		})
	}
	// The mutating webhook pins the tags it verified.
	r := trusting().post(t, admission.PathMutate, review(t, "Pod", object("Pod", []string{reg.Host + "/team/tool:v1"}, nil, nil, withSecret)))
	if !strings.Contains(string(r.Patch), bundled.DigestStr()) {
		t.Errorf("patch = %s, want the digest %s", r.Patch, bundled.DigestStr())
	}
}

// pullSecrets is a cluster with the default service account of namespace
// apps and, in it, pull Secrets of these names holding the registry's
// credentials.
func pullSecrets(reg *registrytest.Registry, names ...string) *fake.Clientset {
	dockerConfig, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.Host: map[string]string{"username": reg.Username, "password": reg.Password}}})
	objs := []runtime.Object{&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "apps"}}}
	for _, n := range names {
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: "apps"}, Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig}})
	}
	return fake.NewSimpleClientset(objs...)
}

// staticKeychain answers every registry with one credential.
type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// ClusterImagePolicies, unmodified, against the real registry (TLS,
// htpasswd, no referrers API: bundles through the tag-schema fallback),
// with images signed by cosign's own code: a key in both formats, keyless
// from a test Fulcio and Rekor, a CUE attestation policy; unsigned and
// wrong-signer images denied.
func TestClusterImagePolicyRealRegistry(t *testing.T) {
	const (
		issuer  = "https://token.actions.githubusercontent.com"
		subject = "https://github.com/example/app/.github/workflows/release.yaml@refs/heads/main"
	)
	reg := registrytest.Start(t)
	auth := &authn.Basic{Username: reg.Username, Password: reg.Password}
	opts := []remote.Option{remote.WithAuth(auth), remote.WithTransport(reg.Transport())}
	key, other := signtest.NewKey(t), signtest.NewKey(t)
	s := signtest.NewSigstore(t)
	push := func(repo string) name.Digest { return signtest.PushImage(t, reg.Host+"/"+repo+":v1", opts...) }
	legacy, bundled, unsigned, wrong := push("keyed/legacy"), push("keyed/bundled"), push("keyed/unsigned"), push("keyed/wrong")
	signtest.SignLegacy(t, legacy, key, opts...)
	signtest.SignBundle(t, bundled, key, opts...)
	signtest.SignLegacy(t, wrong, other, opts...)
	keyless, keylessOther := push("keyless/app"), push("keyless/other")
	s.SignBundle(t, keyless, subject, issuer, opts...)
	s.SignBundle(t, keylessOther, "https://github.com/evil/app/.github/workflows/release.yaml@refs/heads/main", issuer, opts...)
	attested, attestedBad := push("attested/good"), push("attested/bad")
	signtest.AttestBundle(t, attested, key, customPredicate, map[string]any{"Data": "approved"}, opts...)
	signtest.AttestLegacy(t, attestedBad, key, customPredicate, map[string]any{"Data": "rejected"}, opts...)

	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	set := compile(t,
		cipKey("v1beta1", "keyed", reg.Host+"/keyed/**", key.PEM, ""),
		cipKey("v1alpha1", "attested", reg.Host+"/attested/**", key.PEM, "    attestations:\n    - name: approval\n      predicateType: custom\n      policy:\n        type: cue\n        data: 'predicate: Data: \"approved\"'\n"),
		fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1alpha1
kind: TrustRoot
metadata: {name: test-sigstore}
spec:
  sigstoreKeys:
    certificateAuthorities: [{subject: {organization: o, commonName: c}, uri: "https://fulcio.example", certChain: %s}]
    tLogs: [{baseURL: "https://rekor.example", hashAlgorithm: sha-256, publicKey: %s}]
---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: keyless}
spec:
  images: [{glob: "%s/keyless/**"}]
  authorities:
  - keyless:
      trustRootRef: test-sigstore
      insecureIgnoreSCT: true
      identities: [{issuer: %q, subject: %q}]
`, b64(s.CAPEM), b64(s.RekorPEM), reg.Host, issuer, subject))
	d := admission.NewDecider(imageverify.New(imageverify.WithRootCAs(reg.CAPool)),
		admission.WithKeychain(func(context.Context, string, string, []string) (authn.Keychain, error) {
			return staticKeychain{auth}, nil
		}))
	st := admission.NewState(set, admission.Provenance{Version: 1})
	verdicts(t, d, st, []verdict{
		{"key, legacy format", legacy.String(), true},
		{"key, bundle format", bundled.String(), true},
		{"unsigned", unsigned.String(), false},
		{"wrong signer", wrong.String(), false},
		{"keyless, the identity", keyless.String(), true},
		{"keyless, another identity", keylessOther.String(), false},
		{"attestation passes its CUE policy", attested.String(), true},
		{"attestation fails its CUE policy", attestedBad.String(), false},
	})
}

// Notation signatures made by notation-go and pushed with its registry
// code (oras) to the real registry, which has no referrers API: oras
// writes the referrers tag schema, ward reads it, through the webhook,
// with the Pod's pull secret.
func TestNotationRealRegistry(t *testing.T) {
	reg := registrytest.Start(t)
	opts := []remote.Option{remote.WithAuth(&authn.Basic{Username: reg.Username, Password: reg.Password}), remote.WithTransport(reg.Transport())}
	push := signtest.NotationRegistry{Transport: reg.Transport(), Username: reg.Username, Password: reg.Password}
	key, release, intern := signtest.NewKey(t), signtest.NotationChain(t, "release"), signtest.NotationChain(t, "intern")
	jws := signtest.PushImage(t, reg.Host+"/team/jws:v1", opts...)
	signtest.SignNotation(t, jws, release, push, signtest.NotationOptions{}, opts...)
	both := signtest.PushImage(t, reg.Host+"/team/both:v1", opts...)
	signtest.SignNotation(t, both, release, push, signtest.NotationOptions{MediaType: signtest.COSE}, opts...)
	signtest.SignBundle(t, both, key, opts...)
	untrusted := signtest.PushImage(t, reg.Host+"/team/intern:v1", opts...)
	signtest.SignNotation(t, untrusted, intern, push, signtest.NotationOptions{}, opts...)
	unsigned := signtest.PushImage(t, reg.Host+"/team/unsigned:v1", opts...)
	otherCA := signtest.PushImage(t, reg.Host+"/team/otherca:v1", opts...)
	signtest.SignNotation(t, otherCA, signtest.NotationChain(t, "release"), push, signtest.NotationOptions{}, opts...)
	// A chain that expired an hour ago, used two hours ago: with a
	// timestamp from the TSA (its clock set back) it verifies under the
	// "timestamped" policy, without one it is refused.
	expired, signedAt := signtest.NotationExpiredChain(t, "release")
	tsa, tsaURL := signtest.NotationTSA(t)
	tsa.Now = func() time.Time { return signedAt }
	stamped := signtest.PushImage(t, reg.Host+"/stamped/app:v1", opts...)
	signtest.SignNotation(t, stamped, expired, push, signtest.NotationOptions{MediaType: signtest.COSE, SigningTime: signedAt, TSAURL: tsaURL, TSARoot: tsa.Root}, opts...)
	lapsed := signtest.PushImage(t, reg.Host+"/stamped/lapsed:v1", opts...)
	signtest.SignNotation(t, lapsed, expired, push, signtest.NotationOptions{SigningTime: signedAt}, opts...)

	client := pullSecrets(reg, "regcred")
	policy := fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: team}
spec:
  images: [{glob: "%s/team/**"}]
  authorities:
  - name: notation-release
    notation:
      trustStore:
        ca: {data: %q}
      trustedIdentities: ["x509.subject: C=US, ST=WA, O=ward test, CN=release"]
  - name: cosign-release
    key: {data: %q}
---
apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: timestamped}
spec:
  images: [{glob: "%s/stamped/**"}]
  authorities:
  - name: notation-timestamped
    notation:
      trustStore:
        ca: {data: %q}
        tsa: {data: %q}
      trustedIdentities: ["x509.subject: C=US, ST=WA, O=ward test, CN=release"]
`, reg.Host, release.RootPEM(), key.PEM, reg.Host, expired.RootPEM(), notarycerts.CertPEM(tsa.Root))
	p := &admission.Policies{}
	p.Store(admission.NewState(compile(t, policy), admission.Provenance{Version: 1}))
	mux := http.NewServeMux()
	admission.NewWebhook(admission.NewDecider(imageverify.New(imageverify.WithRootCAs(reg.CAPool)), admission.WithKeychain(admission.PullSecretKeychain(client))), p).Register(mux)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv}
	withSecret := map[string]any{"imagePullSecrets": []any{map[string]any{"name": "regcred"}}}
	for _, tc := range []struct {
		name    string
		image   name.Digest
		allowed bool
		reason  string
	}{
		{"notation JWS", jws, true, ""},
		{"notation COSE and cosign", both, true, ""},
		{"notation by an untrusted identity", untrusted, false, "no Notation signature by a trusted identity of trust store sha256:"},
		{"notation by another CA", otherCA, false, "does not contain any trusted certificate"},
		{"unsigned", unsigned, false, "no Notation signature for"},
		{"an expired certificate, timestamped while valid", stamped, true, ""},
		{"an expired certificate without a timestamp", lapsed, false, "no timestamp countersignature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.post(t, admission.PathValidate, review(t, "Pod", object("Pod", []string{tc.image.String()}, nil, nil, withSecret)))
			if r.Allowed != tc.allowed {
				t.Fatalf("allowed = %t, want %t: %v", r.Allowed, tc.allowed, r.Result)
			}
			t.Log(r.Result.Message)
			if tc.reason != "" && !strings.Contains(r.Result.Message, tc.reason) {
				t.Errorf("message %q lacks %q", r.Result.Message, tc.reason)
			}
		})
	}
}
