package imageverify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/internal/notarycerts"
	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/policies"
)

// pemBlock indents PEM for a YAML block scalar at the given depth.
func pemBlock(pem []byte, indent int) string {
	pad := strings.Repeat(" ", indent)
	return pad + strings.ReplaceAll(strings.TrimSpace(string(pem)), "\n", "\n"+pad) + "\n"
}

// notationAuthority compiles a notation authority trusting ca (PEM) for
// the identities, with extra YAML under notation: (indented 6).
func notationAuthority(t *testing.T, ca []byte, identities []string, extra string) *policies.CompiledAuthority {
	t.Helper()
	y := "  - name: n\n    notation:\n      trustStore:\n        ca:\n          data: |\n" + pemBlock(ca, 12)
	y += "      trustedIdentities:\n"
	for _, id := range identities {
		y += fmt.Sprintf("        - %q\n", id)
	}
	return authority(t, y+extra)
}

const releaseIdentity = "x509.subject: C=US, ST=WA, O=ward test, CN=release"

func TestNotationEnvelopesAndDiscovery(t *testing.T) {
	chain := signtest.NotationChain(t, "release")
	a := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "")
	v := imageverify.New()
	for _, referrersAPI := range []bool{true, false} {
		for _, mt := range []string{signtest.JWS, signtest.COSE} {
			t.Run(fmt.Sprintf("%s referrersAPI=%t", mt, referrersAPI), func(t *testing.T) {
				host := signtest.Registry(t, referrersAPI)
				d := signtest.PushImage(t, host+"/team/app:v1")
				signtest.SignNotation(t, d, chain, signtest.NotationRegistry{PlainHTTP: true}, signtest.NotationOptions{MediaType: mt})
				res, err := v.Verify(t.Context(), d, a, nil)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(res.Formats) != "[notation]" || len(res.Signers) != 1 || !strings.Contains(res.Signers[0].Name, "CN=release") || !strings.Contains(res.Signers[0].Name, "key "+res.Signers[0].Key) || !strings.HasPrefix(res.Signers[0].Key, "sha256:") {
					t.Fatalf("formats %v, signers %v", res.Formats, res.Signers)
				}
				if len(res.Matches) != 1 || !strings.Contains(res.Matches[0].Subject, "CN=release") {
					t.Fatalf("matches %+v", res.Matches)
				}
			})
		}
	}
}

// notationCase signs a fresh image (sign nil: unsigned) in a registry
// without the referrers API (notation writes the referrers tag) and
// verifies it against an authority.
func notationCase(t *testing.T, a *policies.CompiledAuthority, sign func(name.Digest)) (*imageverify.Result, error) {
	t.Helper()
	return notationCaseIn(t, false, a, sign)
}

// notationCaseIn is notationCase with or without the referrers API.
func notationCaseIn(t *testing.T, referrersAPI bool, a *policies.CompiledAuthority, sign func(name.Digest), opts ...imageverify.Option) (*imageverify.Result, error) {
	t.Helper()
	host := signtest.Registry(t, referrersAPI)
	d := signtest.PushImage(t, host+"/team/app:v1")
	if sign != nil {
		sign(d)
	}
	return imageverify.New(opts...).Verify(t.Context(), d, a, nil)
}

var plain = signtest.NotationRegistry{PlainHTTP: true}

func TestNotationUnsigned(t *testing.T) {
	chain := signtest.NotationChain(t, "release")
	_, err := notationCase(t, notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, ""), nil)
	if !errors.Is(err, imageverify.ErrNoSignatures) || !strings.Contains(err.Error(), "no Notation signature") {
		t.Fatalf("err = %v, want ErrNoSignatures", err)
	}
}

func TestAttackNotationUntrustedIdentity(t *testing.T) {
	chain := signtest.NotationChain(t, "intern")
	a := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "")
	_, err := notationCase(t, a, func(d name.Digest) { signtest.SignNotation(t, d, chain, plain, signtest.NotationOptions{}) })
	t.Log(err)
	if !errors.Is(err, imageverify.ErrNoMatch) || !strings.Contains(err.Error(), "no Notation signature by a trusted identity of trust store sha256:") {
		t.Fatalf("err = %v, want ErrNoMatch naming the trust store", err)
	}
}

func TestAttackNotationUntrustedCA(t *testing.T) {
	trusted := signtest.NotationChain(t, "release")
	other := signtest.NotationChain(t, "release") // same subject, another CA
	a := notationAuthority(t, trusted.RootPEM(), []string{releaseIdentity}, "")
	_, err := notationCase(t, a, func(d name.Digest) { signtest.SignNotation(t, d, other, plain, signtest.NotationOptions{}) })
	t.Log(err)
	if !errors.Is(err, imageverify.ErrNoMatch) || !strings.Contains(err.Error(), "trusted certificate") {
		t.Fatalf("err = %v, want ErrNoMatch: no trusted certificate", err)
	}
}

func TestNotationExpiredCertificate(t *testing.T) {
	chain, signedAt := signtest.NotationExpiredChain(t, "release")
	sign := func(d name.Digest) {
		signtest.SignNotation(t, d, chain, plain, signtest.NotationOptions{SigningTime: signedAt})
	}
	t.Run("strict denies", func(t *testing.T) {
		for _, api := range []bool{false, true} {
			_, err := notationCaseIn(t, api, notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, ""), sign)
			t.Log(err)
			if !errors.Is(err, imageverify.ErrNoMatch) || !strings.Contains(err.Error(), "expired") {
				t.Fatalf("referrers API %t: err = %v, want ErrNoMatch: expired", api, err)
			}
		}
	})
	t.Run("permissive admits and says why", func(t *testing.T) {
		a := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "      signatureVerification: {level: permissive}\n")
		res, err := notationCase(t, a, sign)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "authenticTimestamp check failed, admitted at level permissive") {
			t.Fatalf("notes %q", res.Notes)
		}
	})
	t.Run("override authenticTimestamp log", func(t *testing.T) {
		a := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "      signatureVerification: {level: strict, override: {authenticTimestamp: log}}\n")
		if _, err := notationCase(t, a, sign); err != nil {
			t.Fatal(err)
		}
	})
}

func TestNotationTimestamp(t *testing.T) {
	tsa, url := signtest.NotationTSA(t)
	chain, signedAt := signtest.NotationExpiredChain(t, "release")
	tsa.Now = func() time.Time { return signedAt }
	tsaStore := "        tsa:\n          data: |\n" + pemBlock(notarycerts.CertPEM(tsa.Root), 12)
	withTSA := func(identities, extra string) *policies.CompiledAuthority {
		y := "  - name: n\n    notation:\n      trustStore:\n        ca:\n          data: |\n" + pemBlock(chain.RootPEM(), 12) + tsaStore
		return authority(t, y+"      trustedIdentities: ["+identities+"]\n"+extra)
	}
	timestamped := func(d name.Digest) {
		signtest.SignNotation(t, d, chain, plain, signtest.NotationOptions{SigningTime: signedAt, TSAURL: url, TSARoot: tsa.Root})
	}
	t.Run("an expired certificate with a trusted timestamp from its validity verifies", func(t *testing.T) {
		for _, api := range []bool{false, true} {
			if _, err := notationCaseIn(t, api, withTSA(`"`+releaseIdentity+`"`, ""), timestamped); err != nil {
				t.Fatalf("referrers API %t: %v", api, err)
			}
		}
	})
	t.Run("afterCertExpiry needs no timestamp while the certificate is valid", func(t *testing.T) {
		fresh := signtest.NotationChain(t, "release")
		y := "  - name: n\n    notation:\n      trustStore:\n        ca:\n          data: |\n" + pemBlock(fresh.RootPEM(), 12) + tsaStore
		a := authority(t, y+"      trustedIdentities: [\""+releaseIdentity+"\"]\n      signatureVerification: {verifyTimestamp: afterCertExpiry}\n")
		if _, err := notationCase(t, a, func(d name.Digest) { signtest.SignNotation(t, d, fresh, plain, signtest.NotationOptions{}) }); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("afterCertExpiry needs the timestamp once the certificate expired", func(t *testing.T) {
		a := withTSA(`"`+releaseIdentity+`"`, "      signatureVerification: {verifyTimestamp: afterCertExpiry}\n")
		if _, err := notationCase(t, a, timestamped); err != nil {
			t.Fatalf("timestamped: %v", err)
		}
		_, err := notationCase(t, a, func(d name.Digest) {
			signtest.SignNotation(t, d, chain, plain, signtest.NotationOptions{SigningTime: signedAt})
		})
		if !errors.Is(err, imageverify.ErrNoMatch) || !strings.Contains(err.Error(), "timestamp") {
			t.Fatalf("not timestamped: %v", err)
		}
	})
	t.Run("without a tsa store the expired certificate is refused", func(t *testing.T) {
		_, err := notationCase(t, notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, ""), timestamped)
		t.Log(err)
		if !errors.Is(err, imageverify.ErrNoMatch) {
			t.Fatalf("err = %v, want ErrNoMatch", err)
		}
	})
	t.Run("a tsa store requires a timestamp", func(t *testing.T) {
		fresh := signtest.NotationChain(t, "release")
		y := "  - name: n\n    notation:\n      trustStore:\n        ca:\n          data: |\n" + pemBlock(fresh.RootPEM(), 12) + tsaStore
		a := authority(t, y+"      trustedIdentities: [\""+releaseIdentity+"\"]\n")
		_, err := notationCase(t, a, func(d name.Digest) { signtest.SignNotation(t, d, fresh, plain, signtest.NotationOptions{}) })
		t.Log(err)
		if !errors.Is(err, imageverify.ErrNoMatch) || !strings.Contains(err.Error(), "timestamp") {
			t.Fatalf("err = %v, want ErrNoMatch: no timestamp", err)
		}
	})
	t.Run("a timestamp from an untrusted TSA is refused", func(t *testing.T) {
		other, _ := signtest.NotationTSA(t)
		y := "  - name: n\n    notation:\n      trustStore:\n        ca:\n          data: |\n" + pemBlock(chain.RootPEM(), 12) +
			"        tsa:\n          data: |\n" + pemBlock(notarycerts.CertPEM(other.Root), 12)
		a := authority(t, y+"      trustedIdentities: [\""+releaseIdentity+"\"]\n")
		_, err := notationCase(t, a, timestamped)
		t.Log(err)
		if !errors.Is(err, imageverify.ErrNoMatch) {
			t.Fatalf("err = %v, want ErrNoMatch", err)
		}
	})
}

func TestNotationLevels(t *testing.T) {
	trusted := signtest.NotationChain(t, "release")
	other := signtest.NotationChain(t, "release")
	signOther := func(d name.Digest) { signtest.SignNotation(t, d, other, plain, signtest.NotationOptions{}) }
	t.Run("audit admits an untrusted signer, saying so", func(t *testing.T) {
		a := notationAuthority(t, trusted.RootPEM(), []string{releaseIdentity}, "      signatureVerification: {level: audit}\n")
		res, err := notationCase(t, a, signOther)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res.Signers[0].Name, "authenticity not enforced: level audit") || res.Signers[0].Key != "" {
			t.Fatalf("signers %v", res.Signers)
		}
	})
	t.Run("audit still requires a signature", func(t *testing.T) {
		a := notationAuthority(t, trusted.RootPEM(), []string{releaseIdentity}, "      signatureVerification: {level: audit}\n")
		if _, err := notationCase(t, a, nil); !errors.Is(err, imageverify.ErrNoSignatures) {
			t.Fatalf("err = %v, want ErrNoSignatures", err)
		}
	})
	t.Run("skip is the caller's business, as static is", func(t *testing.T) {
		a := authority(t, "  - name: n\n    notation:\n      signatureVerification: {level: skip}\n")
		if _, err := notationCase(t, a, nil); !errors.Is(err, imageverify.ErrConfig) {
			t.Fatalf("err = %v, want ErrConfig", err)
		}
	})
	t.Run("any identity the trust store covers", func(t *testing.T) {
		a := notationAuthority(t, other.RootPEM(), []string{"*"}, "")
		if _, err := notationCase(t, a, signOther); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAttackNotationSignatureCopiedFromAnotherImage(t *testing.T) {
	chain := signtest.NotationChain(t, "release")
	a := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "")
	host := signtest.Registry(t, false)
	signedFor := signtest.PushImage(t, host+"/team/app:good")
	victim := signtest.PushImage(t, host+"/team/app:evil")
	// A valid signature over signedFor, attached to victim.
	signtest.SignNotation(t, victim, chain, plain, signtest.NotationOptions{SigningTime: time.Now().Add(-time.Minute), Claimed: &signedFor})
	_, err := imageverify.New().Verify(t.Context(), victim, a, nil)
	t.Log(err)
	if !errors.Is(err, imageverify.ErrNoMatch) || !strings.Contains(err.Error(), "content descriptor mismatch") {
		t.Fatalf("err = %v, want ErrNoMatch: content descriptor mismatch", err)
	}
}

func TestAttackNotationTamperedEnvelope(t *testing.T) {
	chain := signtest.NotationChain(t, "release")
	a := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "")
	for _, mt := range []string{signtest.JWS, signtest.COSE} {
		_, err := notationCase(t, a, func(d name.Digest) {
			signtest.SignNotation(t, d, chain, plain, signtest.NotationOptions{MediaType: mt, SigningTime: time.Now().Add(-time.Minute), Tamper: true})
		})
		t.Log(err)
		if !errors.Is(err, imageverify.ErrNoMatch) {
			t.Fatalf("%s: err = %v, want ErrNoMatch", mt, err)
		}
	}
}

func TestNotationSignatureExpiry(t *testing.T) {
	chain := signtest.NotationChain(t, "release")
	a := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "")
	_, err := notationCase(t, a, func(d name.Digest) {
		signtest.SignNotation(t, d, chain, plain, signtest.NotationOptions{SigningTime: time.Now().Add(-10 * time.Minute), Expiry: time.Now().Add(-5 * time.Minute)})
	})
	if !errors.Is(err, imageverify.ErrNoMatch) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("err = %v, want ErrNoMatch: the signature expired", err)
	}
}

// notation cert generate-test makes a self-signed leaf; a chain of one
// signs, and a trust store holding that certificate verifies it.
func TestNotationSelfSignedLeaf(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: notarycerts.Subject("release", "ward test"), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	self := &notarycerts.Chain{Leaf: cert, Key: k}
	a := notationAuthority(t, notarycerts.CertPEM(cert), []string{releaseIdentity}, "")
	if _, err := notationCase(t, a, func(d name.Digest) { signtest.SignNotation(t, d, self, plain, signtest.NotationOptions{}) }); err != nil {
		t.Fatal(err)
	}
}

// A referrer listed in the referrers tag but deleted does not hide the
// signatures beside it, and alone it is no signature (not an outage).
func TestNotationDanglingReferrer(t *testing.T) {
	chain := signtest.NotationChain(t, "release")
	a := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "")
	host := signtest.Registry(t, false)
	for _, also := range []bool{true, false} {
		d := signtest.PushImage(t, fmt.Sprintf("%s/team/app%t:v1", host, also))
		signtest.SignNotation(t, d, chain, plain, signtest.NotationOptions{})
		if also {
			signtest.SignNotation(t, d, chain, plain, signtest.NotationOptions{MediaType: signtest.COSE})
		}
		index, err := remote.Index(d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1)))
		if err != nil {
			t.Fatal(err)
		}
		im, _ := index.IndexManifest()
		if err := remote.Delete(d.Context().Digest(im.Manifests[0].Digest.String())); err != nil {
			t.Fatal(err)
		}
		_, err = imageverify.New().Verify(t.Context(), d, a, nil)
		switch {
		case also && err != nil:
			t.Fatalf("a dangling referrer beside a good signature: %v", err)
		case !also && !errors.Is(err, imageverify.ErrNoMatch):
			t.Fatalf("a dangling referrer alone: %v, want ErrNoMatch", err)
		}
	}
}

func TestNotationReferrerLimit(t *testing.T) {
	chain, other := signtest.NotationChain(t, "release"), signtest.NotationChain(t, "intern")
	a := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "")
	_, err := notationCaseIn(t, true, a, func(d name.Digest) {
		signtest.SignNotation(t, d, other, plain, signtest.NotationOptions{})
		signtest.SignNotation(t, d, other, plain, signtest.NotationOptions{MediaType: signtest.COSE})
	}, imageverify.WithMaxReferrers(1))
	if !errors.Is(err, imageverify.ErrNoMatch) || !strings.Contains(err.Error(), "1 more Notation signatures not read (at most 1 are)") {
		t.Fatalf("err = %v", err)
	}
}

// Revocation: an OCSP responder the leaf names says good or revoked; one
// that cannot be reached is no verdict (ErrUnavailable, not cached), unless
// the policy skips revocation.
func TestNotationRevocation(t *testing.T) {
	responder := signtest.NewOCSPResponder(t)
	now := time.Now()
	chain, err := notarycerts.NewChain(notarycerts.Subject("release", "ward test"), now.Add(-time.Hour), now.Add(time.Hour), notarycerts.WithOCSP(responder.URL()))
	if err != nil {
		t.Fatal(err)
	}
	responder.Issuer, responder.Key = chain.Root, chain.RootKey
	sign := func(d name.Digest) { signtest.SignNotation(t, d, chain, plain, signtest.NotationOptions{}) }
	strict := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "")
	if _, err := notationCase(t, strict, sign); err != nil {
		t.Fatalf("good: %v", err)
	}
	responder.Revoked = true
	_, err = notationCase(t, strict, sign)
	if !errors.Is(err, imageverify.ErrNoMatch) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked: %v, want ErrNoMatch", err)
	}
	permissive := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "      signatureVerification: {level: permissive}\n")
	res, err := notationCase(t, permissive, sign)
	if err != nil || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "revocation check failed") {
		t.Fatalf("revoked at permissive: %v, notes %q", err, res.Notes)
	}
	responder.Close()
	_, err = notationCase(t, strict, sign)
	t.Log(err)
	if !errors.Is(err, imageverify.ErrUnavailable) {
		t.Fatalf("responder down: %v, want ErrUnavailable", err)
	}
	skip := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "      signatureVerification: {override: {revocation: skip}}\n")
	if _, err := notationCase(t, skip, sign); err != nil {
		t.Fatalf("revocation skipped: %v", err)
	}
}
