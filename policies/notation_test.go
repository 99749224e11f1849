package policies

import (
	"strings"
	"testing"
	"time"

	"ward.dev/ward/internal/notarycerts"
)

// notationPolicy is an ImagePolicy with one notation authority whose
// body (under notation:) is given, indented 6.
func notationPolicy(body string) string {
	return "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: release-images}\nspec:\n  images: [{glob: '**'}]\n  authorities:\n  - name: release\n    notation:\n" + indent(body, 6) + "\n"
}

func notationStore(t testing.TB) (caPEM, leafPEM string) {
	t.Helper()
	now := time.Now()
	c, err := notarycerts.NewChain(notarycerts.Subject("release", "acme"), now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return string(c.RootPEM()), string(notarycerts.CertPEM(c.Leaf))
}

func TestCompileNotation(t *testing.T) {
	ca, leaf := notationStore(t)
	store := "trustStore:\n  ca:\n    data: |\n" + indent(ca, 6) + "\n"
	id := "trustedIdentities: [\"x509.subject: C=US, ST=WA, O=acme, CN=release\"]\n"
	set, err := compileOne(t, notationPolicy(store+id))
	if err != nil {
		t.Fatal(err)
	}
	a := set.ImagePolicies()[0].Authorities[0]
	if a.Notation == nil || a.Notation.Level != "strict" || len(a.Notation.Stores["ca"]) != 1 || a.Fingerprint == "" {
		t.Fatalf("%+v", a.Notation)
	}
	// The fingerprint covers what decides a verdict: the level too.
	permissive, err := compileOne(t, notationPolicy(store+id+"signatureVerification: {level: permissive}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if permissive.ImagePolicies()[0].Authorities[0].Fingerprint == a.Fingerprint {
		t.Error("the level does not change the fingerprint")
	}

	for _, tc := range []struct{ name, body, want string }{
		{"unknown level", store + id + "signatureVerification: {level: lenient}\n", "is \"lenient\", want strict, permissive, audit or skip"},
		{"skip with a store", store + "signatureVerification: {level: skip}\n", "level skip verifies nothing"},
		{"no store", id, "a ca or signingAuthority store is required"},
		{"no identities", store, "at least one is required"},
		{"identity without C, ST and O", store + "trustedIdentities: [\"x509.subject: CN=release\"]\n", "must contain 'C'"},
		{"not PEM", "trustStore: {ca: {data: nope}}\n" + id, "no PEM certificates"},
		{"a leaf in a ca store", "trustStore:\n  ca:\n    data: |\n" + indent(leaf, 6) + "\n" + id, "neither a CA nor self-signed"},
		{"tsa not a root", store + "  tsa:\n    data: |\n" + indent(leaf, 6) + "\n" + id, "not a self-signed root"},
		{"integrity overridden", store + id + "signatureVerification: {override: {integrity: log}}\n", "integrity"},
		{"bad verifyTimestamp", store + id + "signatureVerification: {verifyTimestamp: never}\n", "verifyTimestamp"},
		{"data and secretRef", "trustStore: {ca: {data: x, secretRef: {name: ca}}}\n" + id, "data and secretRef are exclusive"},
		{"two stores from Secrets", "trustStore: {ca: {secretRef: {name: ca}}, tsa: {secretRef: {name: tsa}}}\n" + id, "reads at most one store from a Secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileOne(t, notationPolicy(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") && !strings.Contains(err.Error(), "policies/p0.yaml") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestCompileNotationRefusesCosignFields(t *testing.T) {
	ca, _ := notationStore(t)
	base := "trustStore:\n  ca:\n    data: |\n" + indent(ca, 6) + "\ntrustedIdentities: [\"*\"]\n"
	for _, tc := range []struct{ name, extra, want string }{
		{"attestations", "    attestations: [{name: sbom, predicateType: spdx}]\n", "are cosign's"},
		{"ctlog", "    ctlog: {publicKeys: [x]}\n", "takes no ctlog"},
		{"source repository", "    source: {oci: registry.example.com/sigs}\n", "only signaturePullSecrets apply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileOne(t, notationPolicy(base)+tc.extra)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	skip := strings.Replace(notationPolicy("signatureVerification: {level: skip}\n"), "  authorities:\n", "  threshold: 2\n  authorities:\n  - name: k\n    key:\n      data: |\n"+indent(testKeyPEM(t), 8)+"\n", 1)
	if _, err := compileOne(t, skip); err == nil || !strings.Contains(err.Error(), "level skip, which verifies no signer") {
		t.Fatalf("threshold with skip: %v", err)
	}
}

// A store read from a Secret is filled at admission time; the copy's
// fingerprint and store name cover the Secret's certificates.
func TestNotationStoreFromSecret(t *testing.T) {
	ca, leaf := notationStore(t)
	set, err := compileOne(t, notationPolicy("trustStore: {ca: {secretRef: {name: release-ca}}}\ntrustedIdentities: [\"*\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := set.ImagePolicies()[0].Authorities[0]
	if a.SecretRef() != "release-ca" || len(set.ClusterReferences()) != 1 {
		t.Fatalf("secretRef %q, references %v", a.SecretRef(), set.ClusterReferences())
	}
	filled, err := a.WithSecret(map[string][]byte{"ca.pem": []byte(ca)})
	if err != nil {
		t.Fatal(err)
	}
	if len(filled.Notation.Stores["ca"]) != 1 || filled.Fingerprint == a.Fingerprint || filled.Notation.StoreID == a.Notation.StoreID || filled.SecretRef() != "" {
		t.Fatalf("filled %+v", filled.Notation)
	}
	if _, err := a.WithSecret(map[string][]byte{"ca.pem": []byte(leaf)}); err == nil || !strings.Contains(err.Error(), "neither a CA nor self-signed") {
		t.Fatalf("a leaf in the Secret: %v", err)
	}
}
