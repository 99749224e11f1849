package imageverify_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

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
				if fmt.Sprint(res.Formats) != "[notation]" || len(res.Signers) != 1 || !strings.Contains(res.Signers[0], "CN=release") || !strings.Contains(res.Signers[0], "key sha256:") {
					t.Fatalf("formats %v, signers %v", res.Formats, res.Signers)
				}
				if len(res.Matches) != 1 || !strings.Contains(res.Matches[0].Subject, "CN=release") {
					t.Fatalf("matches %+v", res.Matches)
				}
			})
		}
	}
}

// notationCase signs a fresh image (sign nil: unsigned) and verifies it
// against an authority.
func notationCase(t *testing.T, a *policies.CompiledAuthority, sign func(name.Digest)) (*imageverify.Result, error) {
	t.Helper()
	host := signtest.Registry(t, false)
	d := signtest.PushImage(t, host+"/team/app:v1")
	if sign != nil {
		sign(d)
	}
	return imageverify.New().Verify(t.Context(), d, a, nil)
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

// expiredChain is valid from 3 hours ago to 1 hour ago; signatures made
// with it are dated 2 hours ago.
func expiredChain(t *testing.T) (*notarycerts.Chain, time.Time) {
	now := time.Now()
	c, err := notarycerts.NewChain(notarycerts.Subject("release", "ward test"), now.Add(-3*time.Hour), now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return c, now.Add(-2 * time.Hour)
}

func TestNotationExpiredCertificate(t *testing.T) {
	chain, signedAt := expiredChain(t)
	sign := func(d name.Digest) {
		signtest.SignNotation(t, d, chain, plain, signtest.NotationOptions{SigningTime: signedAt})
	}
	t.Run("strict denies", func(t *testing.T) {
		_, err := notationCase(t, notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, ""), sign)
		t.Log(err)
		if !errors.Is(err, imageverify.ErrNoMatch) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("err = %v, want ErrNoMatch: expired", err)
		}
	})
	t.Run("permissive logs and admits", func(t *testing.T) {
		a := notationAuthority(t, chain.RootPEM(), []string{releaseIdentity}, "      signatureVerification: {level: permissive}\n")
		if _, err := notationCase(t, a, sign); err != nil {
			t.Fatal(err)
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
	chain, signedAt := expiredChain(t)
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
		if _, err := notationCase(t, withTSA(`"`+releaseIdentity+`"`, ""), timestamped); err != nil {
			t.Fatal(err)
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
		if !strings.Contains(res.Signers[0], "authenticity not enforced: level audit") {
			t.Fatalf("signers %v", res.Signers)
		}
	})
	t.Run("audit still requires a signature", func(t *testing.T) {
		a := notationAuthority(t, trusted.RootPEM(), []string{releaseIdentity}, "      signatureVerification: {level: audit}\n")
		if _, err := notationCase(t, a, nil); !errors.Is(err, imageverify.ErrNoSignatures) {
			t.Fatalf("err = %v, want ErrNoSignatures", err)
		}
	})
	t.Run("skip needs no signature", func(t *testing.T) {
		a := authority(t, "  - name: n\n    notation:\n      signatureVerification: {level: skip}\n")
		res, err := notationCase(t, a, nil)
		if err != nil || len(res.Signers) != 1 {
			t.Fatalf("res %+v, err %v", res, err)
		}
	})
	t.Run("any identity the trust store covers", func(t *testing.T) {
		a := notationAuthority(t, other.RootPEM(), []string{"*"}, "")
		if _, err := notationCase(t, a, signOther); err != nil {
			t.Fatal(err)
		}
	})
}
