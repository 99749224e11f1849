package admission_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/internal/signtest"
)

// cipKey is a ClusterImagePolicy in policy-controller's schema, modelled on
// its examples (cip-key.yaml, cip-key-with-attestations.yaml,
// cip-match-resource-label.yaml, cip-static-fail.yaml).
func cipKey(version, name, glob, pem, extra string) string {
	return fmt.Sprintf(`apiVersion: policy.sigstore.dev/%s
kind: ClusterImagePolicy
metadata:
  name: %s
spec:
  images:
  - glob: %q
  authorities:
  - key:
      data: |
%s
%s`, version, name, glob, indentPEM(pem), extra)
}

// ClusterImagePolicies, unmodified, give policy-controller's verdicts on
// images signed by cosign's own code in a registry: signed (either
// format) admitted, unsigned and wrong-signer denied, warn mode admits with
// a warning, attestations by cosign short name, match by label.
func TestClusterImagePolicyVerdicts(t *testing.T) {
	host := signtest.Registry(t, true)
	key, other := signtest.NewKey(t), signtest.NewKey(t)
	legacy := signtest.PushImage(t, host+"/demo/app:v1")
	signtest.SignLegacy(t, legacy, key)
	bundled := signtest.PushImage(t, host+"/demo/tool:v1")
	signtest.SignBundle(t, bundled, key)
	unsigned := signtest.PushImage(t, host+"/demo/unsigned:v1")
	wrong := signtest.PushImage(t, host+"/demo/wrong:v1")
	signtest.SignLegacy(t, wrong, other)
	sbom := signtest.PushImage(t, host+"/sbom/app:v1")
	signtest.AttestBundle(t, sbom, key, "https://spdx.dev/Document", map[string]any{"spdxVersion": "SPDX-2.3"})
	noSBOM := signtest.PushImage(t, host+"/sbom/bare:v1")
	signtest.SignLegacy(t, noSBOM, key)
	warned := signtest.PushImage(t, host+"/warned/app:v1")
	labelled := signtest.PushImage(t, host+"/labelled/app:v1")

	set := compile(t,
		cipKey("v1alpha1", "demo-signed", "**/demo/**", key.PEM, ""),
		cipKey("v1beta1", "sbom-attested", host+"/sbom/*", key.PEM, "    attestations:\n    - name: must-have-spdxjson\n      predicateType: spdxjson\n"),
		cipKey("v1beta1", "warn-only", host+"/warned/**", key.PEM, "  mode: warn\n"),
		cipKey("v1beta1", "labelled-pods", host+"/labelled/**", key.PEM, "  match:\n  - resource: pods\n    version: \"*\"\n    selector: {matchLabels: {signed: required}}\n"),
		`apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: labelled-other}
spec:
  images: [{glob: "`+host+`/labelled/**"}]
  authorities: [{static: {action: pass}}]
`,
		`apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: no-legacy}
spec:
  images: [{glob: "**legacy**"}]
  authorities:
  - static: {action: fail, message: legacy images are retired}
`)
	d := admission.NewDecider(imageverify.New())
	st := admission.NewState(set, admission.Provenance{Version: 1})
	decide := func(image string, labels map[string]string) *admission.Decision {
		t.Helper()
		meta := `{"name":"p"}`
		if labels != nil {
			var kv []string
			for k, v := range labels {
				kv = append(kv, fmt.Sprintf("%q:%q", k, v))
			}
			meta = `{"name":"p","labels":{` + strings.Join(kv, ",") + `}}`
		}
		dec, err := d.Decide(t.Context(), st, admission.Request{Kind: "Pod", Namespace: "apps",
			Object: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":` + meta + `,"spec":{"containers":[{"name":"c","image":"` + image + `"}]}}`)})
		if err != nil {
			t.Fatal(err)
		}
		return dec
	}
	tests := []struct {
		name    string
		image   string
		labels  map[string]string
		allowed bool
		want    string // in the deny message or the warnings
	}{
		{"signed, legacy format", legacy.String(), nil, true, ""},
		{"signed, bundle format", bundled.String(), nil, true, ""},
		{"signed, by tag", host + "/demo/app:v1", nil, true, ""},
		{"unsigned", unsigned.String(), nil, false, "policy demo-signed"},
		{"wrong signer", wrong.String(), nil, false, "policy demo-signed"},
		{"spdxjson attestation", sbom.String(), nil, true, ""},
		{"signature but no attestation", noSBOM.String(), nil, false, "policy sbom-attested"},
		{"warn mode", warned.String(), nil, true, "ward (warn): image " + warned.String() + ": policy warn-only"},
		{"label selects the policy", labelled.String(), map[string]string{"signed": "required"}, false, "policy labelled-pods"},
		{"label does not", labelled.String(), map[string]string{"signed": "no"}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec := decide(tc.image, tc.labels)
			if dec.Allowed != tc.allowed {
				t.Fatalf("allowed = %t, want %t: %s", dec.Allowed, tc.allowed, dec.Message())
			}
			said := dec.Message() + strings.Join(dec.Warnings(), "\n")
			if tc.want != "" && !strings.Contains(said, tc.want) {
				t.Fatalf("decision says %q, want %q", said, tc.want)
			}
		})
	}
	// A static fail carries its message.
	legacyImg := signtest.PushImage(t, host+"/demo/legacy-app:v1")
	signtest.SignLegacy(t, legacyImg, key)
	if dec := decide(legacyImg.String(), nil); dec.Allowed || !strings.Contains(dec.Message(), "static fail: legacy images are retired") {
		t.Fatalf("static fail: %s", dec.Message())
	}
}

// A keyless ClusterImagePolicy whose Fulcio CA and Rekor key come from a
// TrustRoot in the same bundle (policy-controller's
// cip-keyless-with-trustroot and bring-your-own-keys, unmodified but for
// the names): the right identity is admitted in either format, another
// identity and another CA are not.
func TestClusterImagePolicyKeylessWithTrustRoot(t *testing.T) {
	const (
		issuer  = "https://token.actions.githubusercontent.com"
		subject = "https://github.com/example/app/.github/workflows/release.yaml@refs/heads/main"
	)
	s, rogue := signtest.NewSigstore(t), signtest.NewSigstore(t)
	host := signtest.Registry(t, true)
	legacy := signtest.PushImage(t, host+"/demo/app:legacy")
	s.SignLegacy(t, legacy, subject, issuer)
	bundled := signtest.PushImage(t, host+"/demo/app:bundle")
	s.SignBundle(t, bundled, subject, issuer)
	otherID := signtest.PushImage(t, host+"/demo/app:other")
	s.SignLegacy(t, otherID, "https://github.com/evil/app/.github/workflows/release.yaml@refs/heads/main", issuer)
	otherCA := signtest.PushImage(t, host+"/demo/app:rogue")
	rogue.SignLegacy(t, otherCA, subject, issuer)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	trustRoot := fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1alpha1
kind: TrustRoot
metadata:
  name: my-sigstore-keys
spec:
  sigstoreKeys:
    certificateAuthorities:
    - subject:
        organization: fulcio-organization
        commonName: fulcio-common-name
      uri: https://fulcio.fulcio-system.svc
      certChain: %s
    tLogs:
    - baseURL: https://rekor.rekor-system.svc
      hashAlgorithm: sha-256
      publicKey: %s
`, b64(s.CAPEM), b64(s.RekorPEM))
	cip := fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: image-policy-keyless-with-trustroot
spec:
  images:
  - glob: "**demo**"
  authorities:
  - name: keyless
    keyless:
      url: http://fulcio.fulcio-system.svc
      trustRootRef: my-sigstore-keys
      insecureIgnoreSCT: true
      identities:
      - issuer: %s
        subjectRegExp: ^https://github.com/example/.*@refs/heads/main$
    ctlog:
      url: http://rekor.rekor-system.svc
      trustRootRef: my-sigstore-keys
`, issuer)
	// The Fulcio CA read from a Secret (keyless.ca-cert.secretRef), the
	// log's key from the TrustRoot.
	caFromSecret := fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: image-policy-keyless-ca-from-secret
spec:
  images:
  - glob: "**secretca**"
  authorities:
  - keyless:
      ca-cert:
        secretRef: {name: fulcio-ca}
      insecureIgnoreSCT: true
      identities:
      - issuer: %s
        subject: %s
    ctlog:
      trustRootRef: my-sigstore-keys
`, issuer, subject)
	secretCA := signtest.PushImage(t, host+"/secretca/app:v1")
	s.SignLegacy(t, secretCA, subject, issuer)
	rogueCA := signtest.PushImage(t, host+"/secretca/rogue:v1")
	rogue.SignLegacy(t, rogueCA, subject, issuer)
	set := compile(t, cip, trustRoot, caFromSecret) // the TrustRoot may come after the policy
	d := admission.NewDecider(imageverify.New(), admission.WithSecrets(func(_ context.Context, name string) (map[string][]byte, error) {
		if name != "fulcio-ca" {
			return nil, fmt.Errorf("no Secret %s", name)
		}
		return map[string][]byte{"ca.pem": []byte(s.CAPEM)}, nil
	}))
	st := admission.NewState(set, admission.Provenance{Version: 1})
	verdicts(t, d, st, []verdict{
		{"the identity, legacy format", legacy.String(), true},
		{"the identity, bundle format", bundled.String(), true},
		{"another identity", otherID.String(), false},
		{"another CA", otherCA.String(), false},
		{"CA from a Secret", secretCA.String(), true},
		{"another CA than the Secret's", rogueCA.String(), false},
	})
}

// customPredicate is cosign's "custom" predicate type.
const customPredicate = "https://cosign.sigstore.dev/attestation/v1"

// ClusterImagePolicies with CUE and Rego attestation policies and a
// spec.policy over the authorities' results (policy-controller's
// cip-key-with-attestations, -rego, cip-requires-two-signatures-and-two-
// attestations and cip-config-file-policy, unmodified but for the keys and
// globs), on images signed and attested by cosign's own code.
func TestClusterImagePolicyPolicies(t *testing.T) {
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	attested := func(repo, data string, legacy bool) string {
		d := signtest.PushImage(t, host+"/"+repo+":v1")
		signtest.SignLegacy(t, d, key)
		pred := map[string]any{"Data": data, "Timestamp": "2026-11-30T10:00:00Z"}
		if legacy {
			signtest.AttestLegacy(t, d, key, customPredicate, pred)
		} else {
			signtest.AttestBundle(t, d, key, customPredicate, pred)
		}
		return d.String()
	}
	cueGood := attested("cue/good", "foobar key e2e test", true)
	cueBad := attested("cue/bad", "something else", false)
	regoGood := attested("rego/good", "foobar e2e test", false)
	regoBad := attested("rego/bad", "foobar key e2e test", true)
	twoGood := attested("two/good", "foobar key e2e test", false)
	twoSigOnly := signtest.PushImage(t, host+"/two/sigonly:v1")
	signtest.SignLegacy(t, twoSigOnly, key)
	user := func(repo, u string) string {
		img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{User: u}})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(host + "/" + repo + ":v1")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		dg, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return ref.Context().Digest(dg.String()).String()
	}
	nonRoot, root := user("config/nonroot", "65532"), user("config/root", "0")
	attestations := func(lang, data string) string {
		return "    attestations:\n    - name: custom-match-predicate\n      predicateType: \"" + customPredicate + "\"\n      policy:\n        type: " + lang + "\n        data: |\n" + indent(data, 10)
	}
	set := compile(t,
		cipKey("v1alpha1", "cue-attestation", host+"/cue/**", key.PEM, attestations("cue", `predicateType: "`+customPredicate+`"
predicate: Data: "foobar key e2e test"`)),
		cipKey("v1beta1", "rego-attestation", host+"/rego/**", key.PEM, attestations("rego", `package sigstore
default isCompliant = false
isCompliant {
  input.predicateType == "`+customPredicate+`"
  input.predicate.Data == "foobar e2e test"
}`)),
		fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: two-authorities
spec:
  images:
  - glob: %q
  authorities:
  - name: keyatt
    key:
      data: |
%s
    attestations:
    - name: custom-match-predicate
      predicateType: custom
  - name: keysignature
    key:
      data: |
%s
  policy:
    type: rego
    data: |
      package sigstore
      isCompliant[response] {
        count(input.authorityMatches.keysignature.signatures) > 0
        count(input.authorityMatches.keyatt.attestations["custom-match-predicate"]) > 0
        response := {"result": true, "error": "", "warning": ""}
      }
      isCompliant[response] {
        not input.authorityMatches.keyatt
        response := {"result": false, "error": "keyatt must match as well", "warning": ""}
      }
`, host+"/two/**", indentPEM(key.PEM), indentPEM(key.PEM)),
		fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: image-policy-config-file
spec:
  images:
  - glob: %q
  authorities:
  - static:
      action: pass
  policy:
    fetchConfigFile: true
    includeSpec: true
    includeTypeMeta: true
    type: "cue"
    data: |
      config: "linux/amd64": config: User: "65532"
      typemeta: kind: "Pod"
      spec: serviceAccountName: "builder"
`, host+"/config/**"))
	d := admission.NewDecider(imageverify.New())
	st := admission.NewState(set, admission.Provenance{Version: 1})
	for _, tc := range []struct {
		name, image, sa string
		allowed         bool
		want            string
	}{
		{"cue attestation passes", cueGood, "", true, ""},
		{"cue attestation fails", cueBad, "", false, `attestation "custom-match-predicate": cue policy`},
		{"rego attestation passes", regoGood, "", true, ""},
		{"rego attestation fails", regoBad, "", false, "isCompliant is false"},
		{"spec.policy sees both authorities", twoGood, "", true, ""},
		{"spec.policy without the attestation", twoSigOnly.String(), "", false, "policy (rego): policy is not compliant: Rego: keyatt must match as well"},
		{"config file and spec", nonRoot, "builder", true, ""},
		{"config file: root user", root, "builder", false, "policy (cue)"},
		{"spec: another service account", nonRoot, "default", false, "serviceAccountName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"serviceAccountName":%q,"containers":[{"name":"c","image":%q}]}}`, tc.sa, tc.image)
			dec, err := d.Decide(t.Context(), st, admission.Request{Kind: "Pod", Namespace: "apps", Object: []byte(obj)})
			if err != nil {
				t.Fatal(err)
			}
			if dec.Allowed != tc.allowed || !strings.Contains(dec.Message(), tc.want) {
				t.Fatalf("allowed = %t, want %t, message %q, want %q", dec.Allowed, tc.allowed, dec.Message(), tc.want)
			}
		})
	}
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+pad) + "\n"
}

// A ClusterImagePolicy source: signatures kept in another repository
// (cosign's COSIGN_REPOSITORY), in either format, and under a tag prefix;
// without the source the same image is unsigned.
func TestClusterImagePolicySource(t *testing.T) {
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	legacy := signtest.PushImage(t, host+"/apps/legacy:v1")
	signtest.SignLegacyIn(t, legacy, key, host+"/signatures", "")
	prefixed := signtest.PushImage(t, host+"/apps/prefixed:v1")
	signtest.SignLegacyIn(t, prefixed, key, host+"/signatures", "team-a-")
	bundled := signtest.PushImage(t, host+"/apps/bundled:v1")
	// The bundle is a referrer in the signature repository.
	img, err := remote.Image(bundled)
	if err != nil {
		t.Fatal(err)
	}
	sigRepo, err := name.NewRepository(host + "/signatures")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sigRepo.Tag("copy"), img); err != nil {
		t.Fatal(err)
	}
	signtest.SignBundle(t, sigRepo.Digest(bundled.DigestStr()), key)

	source := func(name, glob, src string) string {
		return cipKey("v1beta1", name, glob, key.PEM, src)
	}
	set := compile(t,
		source("legacy", host+"/apps/legacy*", "    source: [{oci: "+host+"/signatures}]\n"),
		source("prefixed", host+"/apps/prefixed*", "    source: [{oci: "+host+"/signatures, tagPrefix: team-a-}]\n"),
		source("bundled", host+"/apps/bundled*", "    source: [{oci: "+host+"/signatures}]\n"),
		source("beside", host+"/beside/**", ""))
	d := admission.NewDecider(imageverify.New())
	st := admission.NewState(set, admission.Provenance{Version: 1})
	for _, tc := range []struct {
		name, image string
		allowed     bool
		want        string
	}{
		{"legacy signature in another repository", legacy.String(), true, ""},
		{"under a tag prefix", prefixed.String(), true, ""},
		{"bundle in another repository", bundled.String(), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec, err := d.Decide(t.Context(), st, podRequest(tc.image))
			if err != nil {
				t.Fatal(err)
			}
			if dec.Allowed != tc.allowed || !strings.Contains(dec.Message(), tc.want) {
				t.Fatalf("allowed = %t, want %t: %s", dec.Allowed, tc.allowed, dec.Message())
			}
		})
	}
	// Without the source, the image is unsigned; with the wrong prefix too.
	other := compile(t,
		source("no-source", host+"/apps/legacy*", ""),
		source("wrong-prefix", host+"/apps/prefixed*", "    source: [{oci: "+host+"/signatures, tagPrefix: team-b-}]\n"))
	st = admission.NewState(other, admission.Provenance{Version: 1})
	for img, want := range map[string]string{legacy.String(): "no signatures found", prefixed.String(): "in " + host + "/signatures in either format"} {
		dec, err := d.Decide(t.Context(), st, podRequest(img))
		if err != nil {
			t.Fatal(err)
		}
		if dec.Allowed || !strings.Contains(dec.Message(), want) {
			t.Fatalf("%s: %s, want denied with %q", img, dec.Message(), want)
		}
	}
}

// key.secretRef: the key is read from a Secret of the controller's
// namespace (through SecretReader, as ward serve reads it), one data entry;
// a rotated key takes effect though the old verdict was cached.
func TestClusterImagePolicySecretRef(t *testing.T) {
	host := signtest.Registry(t, true)
	key, other := signtest.NewKey(t), signtest.NewKey(t)
	signed := signtest.PushImage(t, host+"/apps/app:v1")
	signtest.SignLegacy(t, signed, key)
	doc := func(name, glob, secret string) string {
		return fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: %s}
spec:
  images: [{glob: %q}]
  authorities:
  - name: from-secret
    key:
      secretRef: {name: %s}
`, name, glob, secret)
	}
	secret := func(name string, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ward-system"}, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	client := fake.NewSimpleClientset(
		secret("signing-key", map[string]string{"cosign.pub": key.PEM}),
		secret("two-entries", map[string]string{"a.pub": key.PEM, "b.pub": key.PEM}),
		secret("not-a-key", map[string]string{"cosign.pub": "hello"}),
	)
	set := compile(t, doc("good", "**/apps/app*", "signing-key"), doc("two", "**/two/**", "two-entries"),
		doc("bad", "**/bad/**", "not-a-key"), doc("missing", "**/missing/**", "absent"))
	st := admission.NewState(set, admission.Provenance{Version: 1})
	d := admission.NewDecider(imageverify.New(), admission.WithSecrets(admission.SecretReader(client, "ward-system")))
	decide := func(image string) *admission.Decision {
		t.Helper()
		dec, err := d.Decide(t.Context(), st, podRequest(image))
		if err != nil {
			t.Fatal(err)
		}
		return dec
	}
	if dec := decide(signed.String()); !dec.Allowed {
		t.Fatalf("signed with the Secret's key: %s", dec.Message())
	}
	for repo, want := range map[string]string{
		"two":     "Secret two-entries has 2 data entries (a.pub, b.pub); one is read",
		"bad":     "Secret not-a-key does not hold a PEM public key",
		"missing": "Secret ward-system/absent not found",
	} {
		img := signtest.PushImage(t, host+"/"+repo+"/app:v1")
		signtest.SignLegacy(t, img, key)
		if dec := decide(img.String()); dec.Allowed || !strings.Contains(dec.Message(), want) {
			t.Errorf("%s: %s, want denied with %q", repo, dec.Message(), want)
		}
	}
	if refs := set.ClusterReferences(); len(refs) != 4 || refs[0].Field != "key.secretRef" {
		t.Errorf("cluster references = %v", refs)
	}
	// The key is rotated: the verdict cached for the old key does not
	// survive (a fresh reader stands for the TTL having passed).
	rotated := secret("signing-key", map[string]string{"cosign.pub": other.PEM})
	if _, err := client.CoreV1().Secrets("ward-system").Update(t.Context(), rotated, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d2 := admission.NewDecider(imageverify.New(), admission.WithSecrets(admission.SecretReader(client, "ward-system")))
	if dec, err := d2.Decide(t.Context(), st, podRequest(signed.String())); err != nil || dec.Allowed {
		t.Fatalf("after rotation to another key: allowed=%v err=%v", dec != nil && dec.Allowed, err)
	}
	// Without a Secret reader the authority fails, saying why.
	if dec, _ := admission.NewDecider(imageverify.New()).Decide(t.Context(), st, podRequest(signed.String())); dec.Allowed || !strings.Contains(dec.Message(), "nothing here reads Secrets") {
		t.Fatalf("no reader: %s", dec.Message())
	}
}

// rfc3161timestamp: timestamp authorities from a TrustRoot
// (policy-controller's cip-keyless-tsa and cip-key-tsa, unmodified but for
// names). A keyless signature with a timestamp and no log entry is
// admitted; a timestamp from another TSA is not; as in cosign, a key
// signature without a timestamp still passes.
func TestClusterImagePolicyTimestamps(t *testing.T) {
	const (
		issuer  = "https://token.actions.githubusercontent.com"
		subject = "https://github.com/example/app/.github/workflows/release.yaml@refs/heads/main"
	)
	s, rogue := signtest.NewSigstore(t), signtest.NewSigstore(t)
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	keyless := signtest.PushImage(t, host+"/tsa/keyless:v1")
	s.SignLegacyTimestamped(t, keyless, subject, issuer)
	keylessRogue := signtest.PushImage(t, host+"/tsa/keyless-rogue:v1")
	rogue.SignLegacyTimestamped(t, keylessRogue, subject, issuer) // another CA and TSA
	keyTS := signtest.PushImage(t, host+"/tsa/bykey:v1")
	s.SignLegacyWithKeyTimestamped(t, keyTS, key)
	keyRogueTS := signtest.PushImage(t, host+"/tsa/bykey-rogue:v1")
	rogue.SignLegacyWithKeyTimestamped(t, keyRogueTS, key)
	keyNoTS := signtest.PushImage(t, host+"/tsa/bykey-plain:v1")
	signtest.SignLegacy(t, keyNoTS, key)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	trustRoot := fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1alpha1
kind: TrustRoot
metadata:
  name: tsa-keys
spec:
  sigstoreKeys:
    certificateAuthorities:
    - subject: {organization: fulcio-organization, commonName: fulcio-common-name}
      uri: https://fulcio.fulcio-system.svc
      certChain: %s
    timestampAuthorities:
    - subject: {organization: tsa-organization, commonName: tsa-common-name}
      uri: https://tsa.tsa-system.svc
      certChain: %s
`, b64(s.CAPEM), b64(s.TSAPEM))
	set := compile(t, trustRoot, fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: image-policy-keyless-tsa}
spec:
  images: [{glob: "**/tsa/keyless*"}]
  authorities:
  - keyless:
      trustRootRef: tsa-keys
      insecureIgnoreSCT: true
      identities: [{issuer: %s, subject: %s}]
    rfc3161timestamp:
      trustRootRef: tsa-keys
`, issuer, subject), cipKey("v1beta1", "image-policy-key-tsa", "**/tsa/bykey*", key.PEM, "    rfc3161timestamp:\n      trustRootRef: tsa-keys\n"))
	d := admission.NewDecider(imageverify.New())
	st := admission.NewState(set, admission.Provenance{Version: 1})
	verdicts(t, d, st, []verdict{
		{"keyless, timestamped, no log entry", keyless.String(), true},
		{"keyless, another CA and TSA", keylessRogue.String(), false},
		{"key, timestamped", keyTS.String(), true},
		{"key, timestamp from another TSA", keyRogueTS.String(), false},
		{"key, no timestamp", keyNoTS.String(), true},
	})
}

// verdict is a Pod with one image and whether it is admitted.
type verdict struct {
	name    string
	image   string
	allowed bool
}

// verdicts decides a Pod with each image and checks it is admitted or not.
func verdicts(t *testing.T, d *admission.Decider, st *admission.State, cases []verdict) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dec, err := d.Decide(t.Context(), st, podRequest(tc.image))
			if err != nil {
				t.Fatal(err)
			}
			if dec.Allowed != tc.allowed {
				t.Fatalf("allowed = %t, want %t: %s", dec.Allowed, tc.allowed, dec.Message())
			}
		})
	}
}

// Two timestamp authorities trusted at once (a TSA whose certificate was
// rotated, or two TSAs): a legacy signature timestamped by either is
// admitted, one timestamped by a third is not. cosign's legacy check pins
// one TSA certificate; each trusted one is tried.
func TestTimestampsFromEitherOfTwoTSAs(t *testing.T) {
	first, second, rogue := signtest.NewSigstore(t), signtest.NewSigstore(t), signtest.NewSigstore(t)
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	images := map[string]string{}
	for name, tsa := range map[string]*signtest.Sigstore{"first": first, "second": second, "rogue": rogue} {
		d := signtest.PushImage(t, host+"/tsa2/"+name+":v1")
		tsa.SignLegacyWithKeyTimestamped(t, d, key)
		images[name] = d.String()
	}
	policy := fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: two-tsas}
spec:
  images: [{glob: "%s/tsa2/**"}]
  authorities:
  - name: release
    key: {data: %q}
    rfc3161timestamp:
      certChain: %q
`, host, key.PEM, first.TSAPEM+second.TSAPEM)
	st := admission.NewState(compile(t, policy), admission.Provenance{Version: 1})
	verdicts(t, admission.NewDecider(imageverify.New()), st, []verdict{
		{"timestamped by the first", images["first"], true},
		{"timestamped by the second", images["second"], true},
		{"timestamped by another", images["rogue"], false},
	})
}
