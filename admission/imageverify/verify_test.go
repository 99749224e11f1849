package imageverify_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/bundle"
	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/policies"
)

// authority compiles a one-authority policy and returns the authority.
func authority(t *testing.T, authorityYAML string) *policies.CompiledAuthority {
	t.Helper()
	doc := "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  images: [{glob: '**'}]\n  authorities:\n" + authorityYAML
	set, err := policies.Compile([]bundle.Document{{Path: "p.yaml", Data: []byte(doc)}})
	if err != nil {
		t.Fatal(err)
	}
	return set.ImagePolicies()[0].Authorities[0]
}

func keyAuthority(t *testing.T, k *signtest.Key, extra string) *policies.CompiledAuthority {
	return authority(t, "  - name: k\n    key:\n      data: |\n        "+strings.ReplaceAll(strings.TrimSpace(k.PEM), "\n", "\n        ")+"\n"+extra)
}

func TestVerifySignatureFormats(t *testing.T) {
	for _, referrersAPI := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrersAPI=%t", referrersAPI), func(t *testing.T) {
			host := signtest.Registry(t, referrersAPI)
			key := signtest.NewKey(t)
			v := imageverify.New()
			tests := []struct {
				name    string
				sign    func(d name.Digest)
				formats []string
			}{
				{"legacy sig tag", func(d name.Digest) { signtest.SignLegacy(t, d, key) }, []string{imageverify.FormatSigTag}},
				{"sigstore bundle", func(d name.Digest) { signtest.SignBundle(t, d, key) }, []string{imageverify.FormatBundle}},
				{"both", func(d name.Digest) { signtest.SignLegacy(t, d, key); signtest.SignBundle(t, d, key) }, []string{imageverify.FormatSigTag, imageverify.FormatBundle}},
			}
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					d := signtest.PushImage(t, fmt.Sprintf("%s/team/app%d:v1", host, i))
					tc.sign(d)
					res, err := v.Verify(t.Context(), d, keyAuthority(t, key, ""), nil)
					if err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(res.Formats) != fmt.Sprint(tc.formats) {
						t.Errorf("formats = %v, want %v", res.Formats, tc.formats)
					}
					if len(res.Signers) != 1 || !strings.HasPrefix(res.Signers[0].Name, "key sha256:") || res.Signers[0].Name != "key "+res.Signers[0].Key {
						t.Errorf("signers = %v", res.Signers)
					}
				})
			}
		})
	}
}

func TestAttackUnsigned(t *testing.T) {
	host := signtest.Registry(t, true)
	d := signtest.PushImage(t, host+"/app:v1")
	_, err := imageverify.New().Verify(t.Context(), d, keyAuthority(t, signtest.NewKey(t), ""), nil)
	if !errors.Is(err, imageverify.ErrNoSignatures) {
		t.Fatalf("err = %v, want ErrNoSignatures", err)
	}
}

func TestAttackWrongKey(t *testing.T) {
	host := signtest.Registry(t, true)
	d := signtest.PushImage(t, host+"/app:v1")
	signtest.SignLegacy(t, d, signtest.NewKey(t))
	signtest.SignBundle(t, d, signtest.NewKey(t))
	_, err := imageverify.New().Verify(t.Context(), d, keyAuthority(t, signtest.NewKey(t), ""), nil)
	if !errors.Is(err, imageverify.ErrNoMatch) {
		t.Fatalf("err = %v, want ErrNoMatch", err)
	}
}

// A valid signature of another image, copied onto this image's .sig tag,
// must not count: the payload names the other digest.
func TestAttackSignatureCopiedFromAnotherDigest(t *testing.T) {
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	good := signtest.PushImage(t, host+"/app:good")
	evil := signtest.PushImage(t, host+"/app:evil")
	signtest.SignLegacyFor(t, evil, good, key)
	_, err := imageverify.New().Verify(t.Context(), evil, keyAuthority(t, key, ""), nil)
	if !errors.Is(err, imageverify.ErrNoMatch) {
		t.Fatalf("err = %v, want ErrNoMatch", err)
	}
}

// A bundle whose statement names another digest, stored as a referrer of
// this image, must not count either.
func TestAttackBundleForAnotherDigest(t *testing.T) {
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	good := signtest.PushImage(t, host+"/app:good")
	evil := signtest.PushImage(t, host+"/app:evil")
	signtest.SignBundleFor(t, evil, good, key)
	_, err := imageverify.New().Verify(t.Context(), evil, keyAuthority(t, key, ""), nil)
	if !errors.Is(err, imageverify.ErrNoMatch) {
		t.Fatalf("err = %v, want ErrNoMatch", err)
	}
}

// A tag moved after signing resolves to a digest the signature does not
// cover.
func TestAttackTagMovedAfterSigning(t *testing.T) {
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	v := imageverify.New()
	signed := signtest.PushImage(t, host+"/app:v1")
	signtest.SignLegacy(t, signed, key)
	signtest.PushImage(t, host+"/app:v1") // the tag now names new, unsigned content
	ref, _ := name.ParseReference(host + "/app:v1")
	d, err := v.Resolve(t.Context(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.DigestStr() == signed.DigestStr() {
		t.Fatal("tag did not move")
	}
	if _, err := v.Verify(t.Context(), d, keyAuthority(t, key, ""), nil); !errors.Is(err, imageverify.ErrNoSignatures) {
		t.Fatalf("err = %v, want ErrNoSignatures", err)
	}
}

// An attestation is not a signature, and a signature is not an attestation.
func TestAttackAttestationIsNotASignature(t *testing.T) {
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	d := signtest.PushImage(t, host+"/app:v1")
	signtest.AttestLegacy(t, d, key, "https://slsa.dev/provenance/v1", map[string]any{"builder": "x"})
	signtest.AttestBundle(t, d, key, "https://spdx.dev/Document", map[string]any{"spdxVersion": "SPDX-2.3"})
	v := imageverify.New()
	if _, err := v.Verify(t.Context(), d, keyAuthority(t, key, ""), nil); err == nil {
		t.Fatal("attestations were accepted as a signature")
	}
	signed := signtest.PushImage(t, host+"/app:v2")
	signtest.SignBundle(t, signed, key)
	signtest.SignLegacy(t, signed, key)
	att := keyAuthority(t, key, "    attestations: [{name: sbom, predicateType: 'https://spdx.dev/Document'}]\n")
	if _, err := v.Verify(t.Context(), signed, att, nil); !errors.Is(err, imageverify.ErrAttestation) {
		t.Fatalf("err = %v, want ErrAttestation", err)
	}
}

func TestVerifyAttestations(t *testing.T) {
	host := signtest.Registry(t, false)
	key := signtest.NewKey(t)
	d := signtest.PushImage(t, host+"/app:v1")
	signtest.AttestLegacy(t, d, key, "https://slsa.dev/provenance/v1", map[string]any{"buildDefinition": map[string]any{"buildType": "https://ci.example.com/v1"}})
	signtest.AttestBundle(t, d, key, "https://spdx.dev/Document", map[string]any{"spdxVersion": "SPDX-2.3"})
	v := imageverify.New()
	tests := []struct {
		name, attestations string
		wantErr            error
	}{
		{"legacy with condition", `[{name: prov, predicateType: "https://slsa.dev/provenance/v1", policy: {type: cel, data: "predicate.buildDefinition.buildType == 'https://ci.example.com/v1'"}}]`, nil},
		{"bundle with condition", `[{name: sbom, predicateType: "https://spdx.dev/Document", policy: {type: cel, data: "predicate.spdxVersion.startsWith('SPDX-2')"}}]`, nil},
		{"both required", `[{name: sbom, predicateType: "https://spdx.dev/Document"}, {name: prov, predicateType: "https://slsa.dev/provenance/v1"}]`, nil},
		{"cosign's short names", `[{name: sbom, predicateType: spdxjson}, {name: prov, predicateType: slsaprovenance1}]`, nil},
		{"a short name for another type", `[{name: sbom, predicateType: cyclonedx}]`, imageverify.ErrAttestation},
		{"condition false", `[{name: sbom, predicateType: "https://spdx.dev/Document", policy: {type: cel, data: "predicate.spdxVersion == 'SPDX-3.0'"}}]`, imageverify.ErrAttestation},
		{"missing type", `[{name: vuln, predicateType: "https://cosign.sigstore.dev/attestation/vuln/v1"}]`, imageverify.ErrAttestation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := keyAuthority(t, key, "    attestations: "+tc.attestations+"\n")
			res, err := v.Verify(t.Context(), d, a, nil)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && len(res.Signers) == 0 {
				t.Error("no signers reported")
			}
		})
	}
}

func TestRegistryTrouble(t *testing.T) {
	key := signtest.NewKey(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}))
	defer slow.Close()
	fivexx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusBadGateway)
	}))
	defer fivexx.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Write([]byte("{not json"))
	}))
	defer garbage.Close()
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		for range 1 << 10 {
			w.Write(make([]byte, 8<<10))
		}
	}))
	defer huge.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downHost := strings.TrimPrefix(down.URL, "http://")
	down.Close()

	v := imageverify.New(imageverify.WithMaxResponseBytes(1 << 20))
	digest := "@sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, host string }{
		{"slow", strings.TrimPrefix(slow.URL, "http://")},
		{"5xx", strings.TrimPrefix(fivexx.URL, "http://")},
		{"garbage", strings.TrimPrefix(garbage.URL, "http://")},
		{"huge", strings.TrimPrefix(huge.URL, "http://")},
		{"down", downHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := contextWithTimeout(t, 2*time.Second)
			defer cancel()
			d, err := name.NewDigest(tc.host + "/app" + digest)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = v.Verify(ctx, d, keyAuthority(t, key, ""), nil)
			if !errors.Is(err, imageverify.ErrUnavailable) {
				t.Fatalf("err = %v: registry trouble reported as no signatures", err)
			}
			t.Logf("%s: %v", time.Since(start).Round(time.Millisecond), err)
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %s, past the deadline", el)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error: %q", err)
			}
		})
	}
}

// A signature tag whose layer is a compressed stream (a decompression bomb
// in waiting) is refused before anything decompresses it.
func TestAttackCompressedSignatureBlob(t *testing.T) {
	host := signtest.Registry(t, true)
	d := signtest.PushImage(t, host+"/app:v1")
	// random.Image layers are gzip streams; put one where the .sig goes.
	signtest.PushImage(t, host+"/app:"+strings.Replace(d.DigestStr(), ":", "-", 1)+".sig")
	_, err := imageverify.New().Verify(t.Context(), d, keyAuthority(t, signtest.NewKey(t), ""), nil)
	if err == nil || !strings.Contains(err.Error(), "compressed blob") {
		t.Fatalf("err = %v, want the compressed blob refused", err)
	}
}
