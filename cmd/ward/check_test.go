package main

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ward.dev/ward/internal/signtest"
)

// signedRepo is a committed policy repository whose policy trusts a fresh
// key for <registry>/team/**, with dev published, and a registry holding a
// signed and an unsigned image.
type signedRepo struct {
	dir, signed, unsigned string
}

func newSignedRepo(t *testing.T) signedRepo {
	t.Helper()
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	signed := signtest.PushImage(t, host+"/team/app:v1")
	signtest.SignBundle(t, signed, key)
	unsigned := signtest.PushImage(t, host+"/team/other:v1")
	dir := initRepo(t)
	policy := fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: team-signed}
spec:
  images: [{glob: "%s/team/**"}]
  authorities:
  - name: release-key
    key:
      data: |
        %s
`, host, strings.ReplaceAll(strings.TrimSpace(key.PEM), "\n", "\n        "))
	if err := os.WriteFile(filepath.Join(dir, "policies", "example-image-policy.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCommit(t, dir, "trust the release key")
	mustWard(t, "publish", "--env", "dev", dir)
	return signedRepo{dir: dir, signed: host + "/team/app:v1", unsigned: unsigned.String()}
}

func deployment(name, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: apps}
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers: [{name: app, image: %q}]
`, name, name, name, image)
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheck(t *testing.T) {
	r := newSignedRepo(t)
	tmp := t.TempDir()
	good := writeFile(t, filepath.Join(tmp, "good.yaml"), deployment("web", r.signed)+"---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n")
	bad := writeFile(t, filepath.Join(tmp, "bad.yaml"), deployment("job", r.unsigned))
	bundleFile := filepath.Join(tmp, "b.tgz")
	mustWard(t, "bundle", "build", r.dir, "-o", bundleFile)

	sources := map[string][]string{
		"repo and env":  {"--repo", r.dir, "--env", "dev"},
		"bundle file":   {"--bundle", bundleFile},
		"policy folder": {"--policies", filepath.Join(r.dir, "policies")},
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := ward(t, append([]string{"check", "-f", good}, src...)...)
			if code != 0 || !strings.Contains(out, "ALLOWED  Deployment apps/web") || !strings.Contains(out, "SKIPPED  Service") {
				t.Fatalf("signed: exit %d\n%s%s", code, out, errOut)
			}
			against := map[string]string{"repo and env": "checked against dev v1", "bundle file": "checked against sha256:",
				"policy folder": "checked against working tree " + filepath.Join(r.dir, "policies") + " (unpublished)"}[name]
			if !strings.Contains(out, against) {
				t.Fatalf("output does not say %q:\n%s", against, out)
			}
			code, out, errOut = ward(t, append([]string{"check", "-f", good, "-f", bad}, src...)...)
			if code != 1 || !strings.Contains(out, "DENIED   Deployment apps/job") || !strings.Contains(out, "no signatures found") {
				t.Fatalf("unsigned: exit %d\n%s%s", code, out, errOut)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		code, out, _ := ward(t, "check", "-f", bad, "--repo", r.dir, "--env", "dev", "-o", "json")
		var rep checkReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
		if rep.Allowed || len(rep.Bundles) != 1 || rep.Bundles[0].Version != 1 || rep.Bundles[0].Env != "dev" || len(rep.Results) != 1 || rep.Results[0].Decision.Failures[0].Authority != "release-key" {
			t.Fatalf("report = %+v", rep)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		root := filepath.Join(r.dir, "tuf", "metadata", "1.root.json")
		// A working tree with a misspelt field: the error names the file
		// on disk, the line and the field's full path.
		tree := filepath.Join(tmp, "tree")
		policy, err := os.ReadFile(filepath.Join(r.dir, "policies", "example-image-policy.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		misspelt := writeFile(t, filepath.Join(tree, "team.yaml"), strings.Replace(string(policy), "    key:", "    kye:", 1))
		code, _, errOut := ward(t, "check", "-f", good, "--policies", tree)
		if want := misspelt + ":8: document 1 (ImagePolicy \"team-signed\"): spec.authorities[0].kye: unknown field"; code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("misspelt field: exit %d, stderr %q, want %q", code, errOut, want)
		}
		// An environment the repository does not have: the ones it has.
		code, _, errOut = ward(t, "check", "-f", good, "--repo", r.dir, "--env", "qa", "--root", root)
		if code != 2 || !strings.Contains(errOut, "the repository has dev, staging, prod") {
			t.Errorf("unknown environment: exit %d, stderr %q", code, errOut)
		}
		code, _, errOut = ward(t, "verify", "--env", "qa", "--root", root, r.dir)
		if code != 2 || !strings.Contains(errOut, "the repository has dev, staging, prod") {
			t.Errorf("verify, unknown environment: exit %d, stderr %q", code, errOut)
		}
		for _, args := range [][]string{
			{"check", "-f", good},
			{"check", "-f", good, "--bundle", bundleFile, "--policies", r.dir},
			{"check", "--bundle", bundleFile},
			{"check", "-f", filepath.Join(tmp, "missing.yaml"), "--bundle", bundleFile},
			{"check", "-f", writeFile(t, filepath.Join(tmp, "garbage.yaml"), "kind: [\n"), "--bundle", bundleFile},
		} {
			code, _, errOut = ward(t, args...)
			if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "ward: ") {
				t.Errorf("ward %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
			}
		}
	})
}

// A bundle that does not verify leaves nothing to check against: ward
// check exits 2 (an error), while ward verify, whose check it is, exits 1.
func TestCheckUnverifiableBundle(t *testing.T) {
	dir := initRepo(t)
	mustWard(t, "publish", "--env", "dev", dir)
	targets, _ := filepath.Glob(filepath.Join(dir, "tuf", "targets", "dev", "*"))
	if len(targets) != 1 {
		t.Fatalf("targets: %v", targets)
	}
	if err := os.WriteFile(targets[0], []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := writeFile(t, filepath.Join(t.TempDir(), "pod.yaml"), deployment("web", "registry.example.com/team/app:v1"))
	root := filepath.Join(dir, "tuf", "metadata", "1.root.json")
	if code, _, errOut := ward(t, "check", "-f", pod, "--repo", dir, "--env", "dev", "--root", root); code != 2 || !strings.Contains(errOut, "length or hash does not match") {
		t.Errorf("check: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := ward(t, "verify", "--env", "dev", "--root", root, dir); code != 1 || !strings.Contains(errOut, "length or hash does not match") {
		t.Errorf("verify: exit %d, stderr %q", code, errOut)
	}
}

func TestPolicyTests(t *testing.T) {
	r := newSignedRepo(t)
	writeFile(t, filepath.Join(r.dir, "tests", "manifests", "signed.yaml"), deployment("web", r.signed))
	writeFile(t, filepath.Join(r.dir, "tests", "manifests", "unsigned.yaml"), deployment("job", r.unsigned))
	writeFile(t, filepath.Join(r.dir, "tests", "team-test.yaml"), `apiVersion: policy.ward.dev/v1
kind: PolicyTest
metadata: {name: team}
spec:
  cases:
  - name: signed is admitted
    manifest: manifests/signed.yaml
    expect: allowed
  - name: unsigned is denied
    manifest: manifests/unsigned.yaml
    expect: denied
    reason: no signatures found
`)
	out := mustWard(t, "test", r.dir)
	if !strings.Contains(out, "3 passed, 0 failed") {
		t.Fatalf("output:\n%s", out)
	}
	mustWard(t, "test", r.dir, "--repo", r.dir, "--env", "dev")

	writeFile(t, filepath.Join(r.dir, "tests", "wrong-test.yaml"), `apiVersion: policy.ward.dev/v1
kind: PolicyTest
metadata: {name: wrong}
spec:
  cases:
  - name: expects the unsigned image to pass
    manifest: manifests/unsigned.yaml
    expect: allowed
`)
	code, out, errOut := ward(t, "test", r.dir)
	if code != 1 || !strings.Contains(out, "FAIL  tests/wrong-test.yaml: wrong / expects the unsigned image to pass: Deployment job: expected allowed, got denied") || !strings.Contains(errOut, "1 of 4 policy test cases failed") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

func x509Pool(t *testing.T, pemData []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("no certificates")
	}
	return pool
}

// ward check reads the key of a key.secretRef policy from a Secret given
// with -f, and notes that the policy reads from the cluster.
func TestCheckSecretRef(t *testing.T) {
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	signed := signtest.PushImage(t, host+"/team/app:v1")
	signtest.SignLegacy(t, signed, key)
	tmp := t.TempDir()
	folder := filepath.Join(tmp, "policies")
	writeFile(t, filepath.Join(folder, "cip.yaml"), `apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: image-policy-key-from-secret}
spec:
  images: [{glob: "**"}]
  authorities:
  - key:
      secretRef: {name: cosign-key}
`)
	app := writeFile(t, filepath.Join(tmp, "app.yaml"), deployment("web", signed.String()))
	secret := writeFile(t, filepath.Join(tmp, "secret.yaml"), `apiVersion: v1
kind: Secret
metadata: {name: cosign-key, namespace: ward-system}
stringData:
  cosign.pub: |
    `+strings.ReplaceAll(strings.TrimSpace(key.PEM), "\n", "\n    ")+"\n")
	code, out, errOut := ward(t, "check", "-f", app, "-f", secret, "--policies", folder)
	if code != 0 || !strings.Contains(out, `cip.yaml: ClusterImagePolicy "image-policy-key-from-secret", authority authority-0: key.secretRef reads Secret cosign-key`) {
		t.Fatalf("with the Secret: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = ward(t, "check", "-f", app, "--policies", folder)
	if code != 1 || !strings.Contains(out, "give it to ward check with -f") {
		t.Fatalf("without the Secret: exit %d\n%s", code, out)
	}
}
