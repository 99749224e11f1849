package admission_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/internal/signtest"
)

// cosignOrNotation is a policy with a cosign key and a Notation trust
// store for the release identity; threshold 0 means one.
func cosignOrNotation(host string, key *signtest.Key, caPEM []byte, threshold int) string {
	return fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: signed}
spec:
  images: [{glob: "%s/**"}]
  threshold: %d
  authorities:
  - name: cosign-release
    key: {data: %q}
  - name: notation-release
    notation:
      trustStore:
        ca: {data: %q}
      trustedIdentities: ["x509.subject: C=US, ST=WA, O=ward test, CN=release"]
`, host, threshold, key.PEM, caPEM)
}

var plainRegistry = signtest.NotationRegistry{PlainHTTP: true}

// One policy language: a cosign key OR a Notation identity.
func TestNotationOrCosign(t *testing.T) {
	host := signtest.Registry(t, false)
	key, chain := signtest.NewKey(t), signtest.NotationChain(t, "release")
	st := admission.NewState(compile(t, cosignOrNotation(host, key, chain.RootPEM(), 0)), admission.Provenance{Version: 1})
	d := admission.NewDecider(imageverify.New())
	for _, tc := range []struct {
		name    string
		sign    func(name.Digest)
		allowed bool
		signer  string
	}{
		{"notation only", func(i name.Digest) { signtest.SignNotation(t, i, chain, plainRegistry, signtest.NotationOptions{}) }, true, `notation subject "CN=release`},
		{"cosign only", func(i name.Digest) { signtest.SignLegacy(t, i, key) }, true, "key sha256:"},
		{"unsigned", func(name.Digest) {}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := signtest.PushImage(t, host+"/app:"+strings.ReplaceAll(tc.name, " ", "-"))
			tc.sign(img)
			dec, err := d.Decide(t.Context(), st, podRequest(img.String()))
			if err != nil {
				t.Fatal(err)
			}
			if dec.Allowed != tc.allowed {
				t.Fatalf("allowed=%t message=%q", dec.Allowed, dec.Message())
			}
			if !tc.allowed {
				if msg := dec.Message(); !strings.Contains(msg, "no Notation signature") || !strings.Contains(msg, "cosign-release") {
					t.Fatalf("message %q names neither kind", msg)
				}
				return
			}
			if len(dec.Images[0].Signers) != 1 || !strings.HasPrefix(dec.Images[0].Signers[0], tc.signer) {
				t.Fatalf("signers %v, want %s…", dec.Images[0].Signers, tc.signer)
			}
		})
	}
}

// With a threshold, distinct signers count across kinds: cosign and
// Notation signatures by two keys make two signers, one key signing in
// both formats makes one.
func TestNotationAndCosignThreshold(t *testing.T) {
	host := signtest.Registry(t, true)
	chain := signtest.NotationChain(t, "release")
	for _, tc := range []struct {
		name    string
		key     *signtest.Key
		allowed bool
	}{
		{"two keys", signtest.NewKey(t), true},
		{"one key in both formats counts once", signtest.KeyFrom(t, chain.Key), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := admission.NewState(compile(t, cosignOrNotation(host, tc.key, chain.RootPEM(), 2)), admission.Provenance{Version: 1})
			img := signtest.PushImage(t, host+"/both:"+strings.ReplaceAll(tc.name, " ", "-"))
			signtest.SignNotation(t, img, chain, plainRegistry, signtest.NotationOptions{MediaType: signtest.COSE})
			signtest.SignBundle(t, img, tc.key)
			dec, err := admission.NewDecider(imageverify.New()).Decide(t.Context(), st, podRequest(img.String()))
			if err != nil {
				t.Fatal(err)
			}
			if dec.Allowed != tc.allowed {
				t.Fatalf("allowed=%t message=%q signers=%v", dec.Allowed, dec.Message(), dec.Images[0].Signers)
			}
			if !tc.allowed && !strings.Contains(dec.Message(), "1 of 2 required distinct signers verified") {
				t.Fatalf("message %q", dec.Message())
			}
		})
	}
}

// The image's referrers are listed once per decision, however many
// authorities read them: cosign's bundles and Notation's signatures are
// found in one pass.
func TestReferrersListedOncePerDecision(t *testing.T) {
	var listings atomic.Int32
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/referrers/") {
			listings.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	key, chain := signtest.NewKey(t), signtest.NotationChain(t, "release")
	img := signtest.PushImage(t, host+"/app:v1")
	signtest.SignNotation(t, img, chain, plainRegistry, signtest.NotationOptions{})
	// The cosign authority comes first and finds no bundle; the notation
	// authority then verifies from the same listing.
	st := admission.NewState(compile(t, cosignOrNotation(host, key, chain.RootPEM(), 0)), admission.Provenance{Version: 1})
	listings.Store(0)
	dec, err := admission.NewDecider(imageverify.New()).Decide(t.Context(), st, podRequest(img.String()))
	if err != nil {
		t.Fatal(err)
	}
	if !dec.Allowed {
		t.Fatalf("denied: %s", dec.Message())
	}
	if n := listings.Load(); n != 1 {
		t.Fatalf("referrers listed %d times in one decision, want 1", n)
	}
}

// What a Notation level only reports reaches the user: an expired
// certificate at level permissive admits with an admission warning.
func TestNotationPermissiveWarns(t *testing.T) {
	host := signtest.Registry(t, false)
	expired, signedAt := signtest.NotationExpiredChain(t, "release")
	img := signtest.PushImage(t, host+"/app:v1")
	signtest.SignNotation(t, img, expired, plainRegistry, signtest.NotationOptions{SigningTime: signedAt})
	policy := fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: permissive}
spec:
  images: [{glob: "%s/**"}]
  authorities:
  - name: release
    notation:
      trustStore: {ca: {data: %q}}
      trustedIdentities: ["*"]
      signatureVerification: {level: permissive}
`, host, expired.RootPEM())
	st := admission.NewState(compile(t, policy), admission.Provenance{Version: 1})
	dec, err := admission.NewDecider(imageverify.New()).Decide(t.Context(), st, podRequest(img.String()))
	if err != nil {
		t.Fatal(err)
	}
	w := dec.Warnings()
	if !dec.Allowed || len(w) != 1 || !strings.Contains(w[0], "ward (note): image "+img.String()+": Notation authenticTimestamp check failed, admitted at level permissive") {
		t.Fatalf("allowed=%t warnings=%q", dec.Allowed, w)
	}
}

// Notation's level skip needs no signature: an unsigned image is admitted,
// the registry is not asked, and the signer says which authority let it
// through.
func TestNotationSkipNeedsNoSignature(t *testing.T) {
	policy := `apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: skip}
spec:
  images: [{glob: "reg.example.com/**"}]
  authorities:
  - name: unverified
    notation: {signatureVerification: {level: skip}}
`
	st := admission.NewState(compile(t, policy), admission.Provenance{Version: 1})
	v := &countingVerifier{}
	dec, err := admission.NewDecider(v).Decide(t.Context(), st, podRequest("reg.example.com/app@sha256:"+strings.Repeat("d", 64)))
	if err != nil {
		t.Fatal(err)
	}
	if !dec.Allowed || fmt.Sprint(dec.Images[0].Signers) != "[notation level skip (unverified)]" || v.verifies.Load() != 0 {
		t.Fatalf("allowed=%t signers=%v verifications=%d", dec.Allowed, dec.Images[0].Signers, v.verifies.Load())
	}
}
