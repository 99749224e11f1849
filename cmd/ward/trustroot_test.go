package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/internal/tuftest"
)

// Keyless against "Sigstore's public-good instance" as a policy-controller
// user writes it (keyless.url, no keys pasted): its trusted root, here a
// virtual Sigstore's trusted_root.json, imported into the policy folder
// with ward trustroot import; ward check then admits the image signed by
// the identity and denies the unsigned one.
// The keyless identity of the tests' GitHub Actions release workflow.
const (
	actionsIssuer  = "https://token.actions.githubusercontent.com"
	actionsSubject = "https://github.com/example/app/.github/workflows/release.yaml@refs/heads/main"
)

// actionsCIP is a ClusterImagePolicy, as a policy-controller user writes
// it, admitting images under glob signed keylessly by the release
// workflow through Sigstore's public-good instance.
func actionsCIP(name, glob string) string {
	return `apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: ` + name + `
spec:
  images:
  - glob: "` + glob + `"
  authorities:
  - keyless:
      url: https://fulcio.sigstore.dev
      insecureIgnoreSCT: true
      identities:
      - issuer: ` + actionsIssuer + `
        subject: "` + actionsSubject + `"
    ctlog:
      url: https://rekor.sigstore.dev
`
}

func TestTrustRootImportForPublicGoodKeyless(t *testing.T) {
	const issuer, subject = actionsIssuer, actionsSubject
	s := signtest.NewSigstore(t)
	data := s.TrustedRootJSON(t)
	tmp := t.TempDir()
	trusted := writeFile(t, filepath.Join(tmp, "trusted_root.json"), string(data))
	folder := filepath.Join(tmp, "policies")
	os.MkdirAll(folder, 0o755)
	mustWard(t, "trustroot", "import", "--trusted-root", trusted, "-o", filepath.Join(folder, "sigstore-public-good.yaml"))
	writeFile(t, filepath.Join(folder, "signed-by-github-actions.yaml"), actionsCIP("image-is-signed-by-github-actions", "**"))
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

// From a Sigstore TUF mirror (folder and http), verified from a pinned
// root, to a TrustRoot; and policy-controller's TrustRoot "repository" (a
// serialized TUF repository) loading as it is: both give the same verdicts.
func TestTrustRootFromTUF(t *testing.T) {
	const issuer, subject = actionsIssuer, actionsSubject
	s := signtest.NewSigstore(t)
	trJSON := s.TrustedRootJSON(t)
	tmp := t.TempDir()
	mirror := filepath.Join(tmp, "mirror")
	rootJSON := tuftest.NewSigstoreMirror(t, mirror, map[string]tuftest.SigstoreTarget{"trusted_root.json": {Data: trJSON}}, time.Now().Add(24*time.Hour)).Root
	pinned := writeFile(t, filepath.Join(tmp, "root.json"), string(rootJSON))
	srv := httptest.NewServer(http.FileServer(http.Dir(mirror)))
	t.Cleanup(srv.Close)

	host := signtest.Registry(t, true)
	signed := signtest.PushImage(t, host+"/app:v1")
	s.SignLegacy(t, signed, subject, issuer)
	app := writeFile(t, filepath.Join(tmp, "app.yaml"), deployment("web", signed.String()))
	cip := `apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: keyless-from-tuf}
spec:
  images: [{glob: "**"}]
  authorities:
  - keyless:
      trustRootRef: from-tuf
      insecureIgnoreSCT: true
      identities: [{issuer: "` + issuer + `", subject: "` + subject + `"}]
`
	for _, from := range []string{mirror, srv.URL} {
		folder := filepath.Join(t.TempDir(), "policies")
		writeFile(t, filepath.Join(folder, "cip.yaml"), cip)
		mustWard(t, "trustroot", "import", "--tuf-mirror", from, "--tuf-root", pinned, "--name", "from-tuf", "-o", filepath.Join(folder, "from-tuf.yaml"))
		if code, out, errOut := ward(t, "check", "-f", app, "--policies", folder); code != 0 {
			t.Fatalf("imported from %s: exit %d\n%s%s", from, code, out, errOut)
		}
	}
	// A repository TrustRoot, as policy-controller's docs make one.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	filepath.WalkDir(mirror, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(mirror, p)
		tw.WriteHeader(&tar.Header{Name: "repository/" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
		return nil
	})
	tw.Close()
	zw.Close()
	folder := filepath.Join(tmp, "policies")
	writeFile(t, filepath.Join(folder, "cip.yaml"), cip)
	repoDoc := func(archive []byte) string {
		return fmt.Sprintf("apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: from-tuf}\nspec:\n  repository:\n    root: %s\n    mirrorFS: %s\n    targets: targets\n",
			base64.StdEncoding.EncodeToString(rootJSON), base64.StdEncoding.EncodeToString(archive))
	}
	writeFile(t, filepath.Join(folder, "trustroot.yaml"), repoDoc(buf.Bytes()))
	if code, out, errOut := ward(t, "check", "-f", app, "--policies", folder); code != 0 {
		t.Fatalf("repository TrustRoot: exit %d\n%s%s", code, out, errOut)
	}
	// A remote TrustRoot: ward check reads the mirror (the controller reads
	// it in its sync loop).
	writeFile(t, filepath.Join(folder, "trustroot.yaml"), fmt.Sprintf("apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: from-tuf}\nspec:\n  remote:\n    mirror: %s\n    root: %s\n",
		srv.URL, base64.StdEncoding.EncodeToString(rootJSON)))
	if code, out, errOut := ward(t, "check", "-f", app, "--policies", folder); code != 0 {
		t.Fatalf("remote TrustRoot: exit %d\n%s%s", code, out, errOut)
	}
	// A corrupted archive is refused, naming the document and field.
	bad := append([]byte{}, buf.Bytes()...)
	bad[len(bad)/2] ^= 0xff
	writeFile(t, filepath.Join(folder, "trustroot.yaml"), repoDoc(bad))
	if code, _, errOut := ward(t, "check", "-f", app, "--policies", folder); code != 2 || !strings.Contains(errOut, `(TrustRoot "from-tuf"): spec.repository:`) {
		t.Fatalf("corrupted repository: exit %d, %s", code, errOut)
	}
}
