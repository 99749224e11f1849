package policies

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
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
		{"an identity notation does not verify", store + "trustedIdentities: [\"x509.san: release\"]\n", `want "x509.subject: <DN>" or "*"`},
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
	if _, err := compileOne(t, skip); err == nil || !strings.Contains(err.Error(), "notation at level skip, which does not authenticate signers") {
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

// A threshold counts trusted signers: authorities at level audit, or with
// authenticity only logged, accept anyone's signature and cannot take
// part; two identities under one CA are two signers.
func TestNotationThreshold(t *testing.T) {
	ca, _ := notationStore(t)
	authority := func(name, id, level string) string {
		return "  - name: " + name + "\n    notation:\n      trustStore: {ca: {data: " + fmt.Sprintf("%q", ca) + "}}\n      trustedIdentities: [\"" + id + "\"]\n      signatureVerification: " + level + "\n"
	}
	policy := func(a, b string) string {
		return "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: two}\nspec:\n  images: [{glob: '**'}]\n  threshold: 2\n  authorities:\n" + a + b
	}
	release, security := "x509.subject: C=US, ST=WA, O=acme, CN=release", "x509.subject: C=US, ST=WA, O=acme, CN=security"
	if _, err := compileOne(t, policy(authority("release", release, "{level: strict}"), authority("security", security, "{level: strict}"))); err != nil {
		t.Fatalf("two identities under one CA: %v", err)
	}
	for _, level := range []string{"{level: audit}", "{level: strict, override: {authenticity: log}}"} {
		_, err := compileOne(t, policy(authority("release", release, "{level: strict}"), authority("anyone", security, level)))
		if err == nil || !strings.Contains(err.Error(), "does not authenticate signers") {
			t.Errorf("%s under a threshold: %v", level, err)
		}
	}
	if _, err := compileOne(t, policy(authority("release", release, "{level: strict}"), authority("again", release, "{level: strict}"))); err == nil || !strings.Contains(err.Error(), "are the same signer") {
		t.Errorf("the same identity twice: %v", err)
	}
}

// notation cert generate-test makes a self-signed certificate that is not
// a CA; notation's trust store takes it, and so does ward's.
func TestNotationSelfSignedLeafInStore(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: notarycerts.Subject("test", "acme"), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if err := NotationStoreCertificate("ca", cert); err != nil {
		t.Fatalf("ca: %v", err)
	}
	if err := NotationStoreCertificate("tsa", cert); err == nil {
		t.Fatal("a self-signed leaf accepted as a TSA root")
	}
}
