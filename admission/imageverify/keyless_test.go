package imageverify_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/internal/signtest"
)

const (
	ciIssuer  = "https://token.actions.githubusercontent.com"
	ciSubject = "https://github.com/example/app/.github/workflows/release.yaml@refs/heads/main"
)

func indented(pem string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimSpace(pem), "\n", "\n"+pad)
}

func keylessAuthority(t *testing.T, s *signtest.Sigstore, identity string) string {
	return fmt.Sprintf(`  - name: ci
    keyless:
      ca-cert:
        data: |
%s
      identities: [%s]
      ignoreSCTUnsafe: true
    ctlog:
      publicKeys:
      - |
%s
`, indented(s.CAPEM, 10), identity, indented(s.RekorPEM, 8))
}

func TestVerifyKeyless(t *testing.T) {
	s := signtest.NewSigstore(t)
	host := signtest.Registry(t, true)
	v := imageverify.New()
	legacy := signtest.PushImage(t, host+"/app:legacy")
	s.SignLegacy(t, legacy, ciSubject, ciIssuer)
	bundled := signtest.PushImage(t, host+"/app:bundle")
	s.SignBundle(t, bundled, ciSubject, ciIssuer)
	tests := []struct {
		name     string
		identity string
		wantErr  error
	}{
		{"exact", fmt.Sprintf("{issuer: %q, subject: %q}", ciIssuer, ciSubject), nil},
		{"regexp", fmt.Sprintf("{issuer: %q, subjectRegExp: '^https://github.com/example/.*@refs/heads/main$'}", ciIssuer), nil},
		{"one of several", fmt.Sprintf("{issuer: 'https://accounts.google.com', subject: x@example.com}, {issuer: %q, subject: %q}", ciIssuer, ciSubject), nil},
		{"wrong subject", fmt.Sprintf("{issuer: %q, subject: 'https://github.com/evil/app/.github/workflows/release.yaml@refs/heads/main'}", ciIssuer), imageverify.ErrNoMatch},
		{"wrong issuer", fmt.Sprintf("{issuer: 'https://accounts.google.com', subject: %q}", ciSubject), imageverify.ErrNoMatch},
		{"regexp not anchored to the repo", fmt.Sprintf("{issuer: %q, subjectRegExp: '^https://github.com/other/'}", ciIssuer), imageverify.ErrNoMatch},
	}
	for _, img := range []struct {
		format string
		d      name.Digest
	}{{imageverify.FormatSigTag, legacy}, {imageverify.FormatBundle, bundled}} {
		for _, tc := range tests {
			t.Run(img.format+"/"+tc.name, func(t *testing.T) {
				res, err := v.Verify(t.Context(), img.d, authority(t, keylessAuthority(t, s, tc.identity)), nil)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("err = %v, want %v", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Formats) != 1 || res.Formats[0] != img.format {
					t.Errorf("formats = %v", res.Formats)
				}
				if len(res.Signers) != 1 || !strings.Contains(res.Signers[0].Name, ciSubject) || !strings.Contains(res.Signers[0].Name, ciIssuer) || res.Signers[0].Key != "" {
					t.Errorf("signers = %v", res.Signers)
				}
			})
		}
	}
}

// A certificate from another CA for the right identity is refused.
func TestAttackKeylessOtherCA(t *testing.T) {
	trusted, rogue := signtest.NewSigstore(t), signtest.NewSigstore(t)
	host := signtest.Registry(t, true)
	d := signtest.PushImage(t, host+"/app:v1")
	rogue.SignLegacy(t, d, ciSubject, ciIssuer)
	rogue.SignBundle(t, d, ciSubject, ciIssuer)
	id := fmt.Sprintf("{issuer: %q, subject: %q}", ciIssuer, ciSubject)
	if _, err := imageverify.New().Verify(t.Context(), d, authority(t, keylessAuthority(t, trusted, id)), nil); !errors.Is(err, imageverify.ErrNoMatch) {
		t.Fatalf("err = %v, want ErrNoMatch", err)
	}
}

// A log entry signed by another log (or none) does not give the signing
// time, so the short-lived certificate cannot be trusted.
func TestAttackKeylessUntrustedLog(t *testing.T) {
	trusted, rogue := signtest.NewSigstore(t), signtest.NewSigstore(t)
	host := signtest.Registry(t, true)
	d := signtest.PushImage(t, host+"/app:v1")
	trusted.SignLegacy(t, d, ciSubject, ciIssuer)
	trusted.SignBundle(t, d, ciSubject, ciIssuer)
	withRogueLog := &signtest.Sigstore{VS: trusted.VS, CAPEM: trusted.CAPEM, RekorPEM: rogue.RekorPEM}
	id := fmt.Sprintf("{issuer: %q, subject: %q}", ciIssuer, ciSubject)
	if _, err := imageverify.New().Verify(t.Context(), d, authority(t, keylessAuthority(t, withRogueLog, id)), nil); !errors.Is(err, imageverify.ErrNoMatch) {
		t.Fatalf("err = %v, want ErrNoMatch", err)
	}
}

// A signature logged after the certificate expired is refused.
func TestAttackKeylessCertificateExpired(t *testing.T) {
	s := signtest.NewSigstore(t)
	host := signtest.Registry(t, true)
	d := signtest.PushImage(t, host+"/app:v1")
	s.SignLegacyAt(t, d, ciSubject, ciIssuer, time.Now().Add(30*time.Minute))
	id := fmt.Sprintf("{issuer: %q, subject: %q}", ciIssuer, ciSubject)
	_, err := imageverify.New().Verify(t.Context(), d, authority(t, keylessAuthority(t, s, id)), nil)
	if !errors.Is(err, imageverify.ErrNoMatch) {
		t.Fatalf("err = %v, want ErrNoMatch", err)
	}
	t.Log(err)
}

// Identity regexps match whole values: a subject that merely contains the
// expected prefix does not pass.
func TestAttackKeylessRegexpSubstring(t *testing.T) {
	s := signtest.NewSigstore(t)
	host := signtest.Registry(t, true)
	d := signtest.PushImage(t, host+"/app:v1")
	evil := "https://github.com/attacker/r/.github/workflows/w.yml@refs/heads/github.com/example/x"
	s.SignLegacy(t, d, evil, ciIssuer)
	s.SignBundle(t, d, evil, ciIssuer)
	id := fmt.Sprintf("{issuer: %q, subjectRegExp: 'github.com/example/'}", ciIssuer)
	if _, err := imageverify.New().Verify(t.Context(), d, authority(t, keylessAuthority(t, s, id)), nil); !errors.Is(err, imageverify.ErrNoMatch) {
		t.Fatalf("err = %v, want ErrNoMatch", err)
	}
}
