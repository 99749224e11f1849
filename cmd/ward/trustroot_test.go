package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"

	"ward.dev/ward/internal/signtest"
)

// Keyless against "Sigstore's public-good instance" as a policy-controller
// user writes it (keyless.url, no keys pasted): its trusted root, here a
// virtual Sigstore's trusted_root.json, imported into the policy folder
// with ward trustroot import; ward check then admits the image signed by
// the identity and denies the unsigned one.
func TestTrustRootImportForPublicGoodKeyless(t *testing.T) {
	const (
		issuer  = "https://token.actions.githubusercontent.com"
		subject = "https://github.com/example/app/.github/workflows/release.yaml@refs/heads/main"
	)
	s := signtest.NewSigstore(t)
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, s.VS.FulcioCertificateAuthorities(), s.VS.CTLogs(), s.VS.TimestampingAuthorities(), s.VS.RekorLogs())
	if err != nil {
		t.Fatal(err)
	}
	data, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	trusted := writeFile(t, filepath.Join(tmp, "trusted_root.json"), string(data))
	folder := filepath.Join(tmp, "policies")
	os.MkdirAll(folder, 0o755)
	mustWard(t, "trustroot", "import", "--trusted-root", trusted, "-o", filepath.Join(folder, "sigstore-public-good.yaml"))
	writeFile(t, filepath.Join(folder, "signed-by-github-actions.yaml"), `apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: image-is-signed-by-github-actions
spec:
  images:
  - glob: "**"
  authorities:
  - keyless:
      url: https://fulcio.sigstore.dev
      insecureIgnoreSCT: true
      identities:
      - issuer: `+issuer+`
        subject: "`+subject+`"
    ctlog:
      url: https://rekor.sigstore.dev
`)
	host := signtest.Registry(t, true)
	signed := signtest.PushImage(t, host+"/app:v1")
	s.SignLegacy(t, signed, subject, issuer)
	unsigned := signtest.PushImage(t, host+"/other:v1")
	if code, out, errOut := ward(t, "check", "-f", writeFile(t, filepath.Join(tmp, "signed.yaml"), deployment("web", signed.String())), "--policies", folder); code != 0 {
		t.Fatalf("signed: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ := ward(t, "check", "-f", writeFile(t, filepath.Join(tmp, "unsigned.yaml"), deployment("job", unsigned.String())), "--policies", folder)
	if code != 1 || !strings.Contains(out, "policy image-is-signed-by-github-actions") {
		t.Fatalf("unsigned: exit %d\n%s", code, out)
	}
	// Without the imported TrustRoot the policy does not load, and says how.
	os.Remove(filepath.Join(folder, "sigstore-public-good.yaml"))
	if code, _, errOut := ward(t, "check", "-f", filepath.Join(tmp, "signed.yaml"), "--policies", folder); code != 2 || !strings.Contains(errOut, "ward trustroot import") {
		t.Fatalf("no TrustRoot: exit %d, %s", code, errOut)
	}
}
