package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ward.dev/ward/bundle/keys"
	"ward.dev/ward/internal/apiservertest"
	"ward.dev/ward/internal/imagesign"
	"ward.dev/ward/internal/registrytest"
	"ward.dev/ward/internal/signtest"
)

// readmeBlock returns the first ```sh block after heading in README.md.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	return readmeBlocks(t, heading)[0]
}

// readmeBlocks returns the sh blocks of the README's section heading, up
// to the next section.
func readmeBlocks(t *testing.T, heading string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q", heading)
	}
	if i := strings.Index(after, "\n## "); i >= 0 {
		after = after[:i]
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(after, -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) == 0 {
		t.Fatalf("no sh block in %q", heading)
	}
	return blocks
}

// shell runs README snippets as a reader would: ward on the PATH, an
// editor that changes the file it is given, a home of its own.
type shell struct {
	bin, editor, home string
	env               []string // added to every command's environment
	timeout           string   // of one run, for timeout(1); default 120 s
}

func newShell(t *testing.T) *shell {
	t.Helper()
	home := t.TempDir()
	sh := &shell{bin: filepath.Join(home, "bin"), home: home}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(sh.bin, "ward"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Go's caches stay where they are: a home of its own must not start
	// a build (make image) from empty ones.
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", v, err)
		}
		sh.env = append(sh.env, v+"="+strings.TrimSpace(string(out)))
	}
	sh.editor = filepath.Join(sh.bin, "edit")
	if err := os.WriteFile(sh.editor, []byte("#!/bin/sh\necho '# tightened in the tour' >> \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return sh
}

// run runs script in dir with bash -euo pipefail, bounded in time (a
// snippet that waits for something never true ends), and returns its
// output.
func (sh *shell) run(t *testing.T, dir, script string) string {
	t.Helper()
	limit := sh.timeout
	if limit == "" {
		limit = "120"
	}
	cmd := exec.Command("timeout", limit, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+sh.bin+":"+os.Getenv("PATH"), "EDITOR="+sh.editor, "HOME="+sh.home,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	cmd.Env = append(cmd.Env, sh.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return string(out)
}

// The README's five-minute tour, its ward check snippet and its
// controller snippet run as printed, in a fresh folder; nothing is left
// uncommitted, and a clone of the result verifies as the controller would
// verify it. The reader's edit points the example policy at their own
// registry (a loopback one here), whose image is signed with the
// repository's keys/cosign.key, and deploy/ and app.yaml run that image.
func TestReadmeTour(t *testing.T) {
	sh := newShell(t)
	work := filepath.Join(sh.home, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	host := signtest.Registry(t, true)
	img := signtest.PushImage(t, host+"/team/app:v1")
	editor := fmt.Sprintf("#!/bin/sh\nsed -i 's#registry.example.com/team/#%s/team/#' \"$1\"\necho '# tightened in the tour' >> \"$1\"\n", host)
	if err := os.WriteFile(sh.editor, []byte(editor), 0o755); err != nil {
		t.Fatal(err)
	}
	tour := readmeBlocks(t, "## A five-minute tour")
	if len(tour) != 2 {
		t.Fatalf("the tour has %d sh blocks, this test runs 2", len(tour))
	}
	if out := sh.run(t, work, tour[0]); !strings.Contains(out, "reproducible") {
		t.Fatalf("the tour's builds differ:\n%s", out)
	}
	repo := filepath.Join(work, "my-policies")
	if status := sh.run(t, repo, "git status --porcelain"); strings.TrimSpace(status) != "" {
		t.Fatalf("uncommitted after the tour:\n%s", status)
	}
	sh.run(t, work, "git clone -q my-policies clone && cd clone && ward verify --env staging --root ../staging-root.json --state-dir ../clone-state")

	// ward check, as printed, where the tour ended: the image signed with
	// keys/cosign.key (as cosign sign --key would) is allowed.
	signer, err := keys.Load(t.Context(), filepath.Join(repo, "keys", "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := imagesign.SignLegacy(img, img, signer); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(repo, "deploy", "app.yaml"), deployment("app", img.String()))
	writeFile(t, filepath.Join(repo, "app.yaml"), deployment("app", img.String()))
	if out := sh.run(t, repo, tour[1]); !strings.Contains(out, "ALLOWED  Deployment apps/app") || !strings.Contains(out, `"allowed": true`) {
		t.Fatalf("the ward check snippet:\n%s", out)
	}

	// Running the controller, from where the tour ended, on its default
	// ports; then stopped.
	out := sh.run(t, repo, readmeBlock(t, "## Run the controller")+"\nkill %1\nwait || true\n")
	if !strings.Contains(out, "ward_source_state") || !strings.Contains(out, "enforcing") {
		t.Fatalf("the controller snippet:\n%s", out)
	}
}

// The README's path from policy-controller runs as printed in a policy
// repository: ClusterImagePolicies copied in from ../cluster-policies,
// Sigstore's trusted root imported (a virtual Sigstore's here), and
// ward check admitting the image its keyless identity signed.
func TestReadmeComingFromPolicyController(t *testing.T) {
	sh := newShell(t)
	work := filepath.Join(sh.home, "work")
	s := signtest.NewSigstore(t)
	host := signtest.Registry(t, true)
	img := signtest.PushImage(t, host+"/app:v1")
	s.SignLegacy(t, img, actionsSubject, actionsIssuer)
	writeFile(t, filepath.Join(work, "cluster-policies", "signed-by-github-actions.yaml"), actionsCIP("signed-by-github-actions", host+"/**"))
	repo := filepath.Join(work, "policies-repo")
	sh.run(t, work, "ward init policies-repo >/dev/null")
	writeFile(t, filepath.Join(repo, "trusted_root.json"), string(s.TrustedRootJSON(t)))
	writeFile(t, filepath.Join(repo, "deploy", "app.yaml"), deployment("app", img.String()))
	blocks := readmeBlocks(t, "## Policies and admission")
	if out := sh.run(t, repo, blocks[0]); !strings.Contains(out, "ALLOWED  Deployment apps/app") {
		t.Fatalf("the policy-controller snippet:\n%s", out)
	}
}

// The README's cluster install runs in a copy of ward's checkout beside a
// policy repository: make image builds and pushes to a real registry (TLS,
// htpasswd; standing in for registry.example.com), kustomize sets the
// image, kubectl applies deploy/base, the root ConfigMap and a
// PolicySource to a real API server, and lists PolicySources.
func TestReadmeInstallInACluster(t *testing.T) {
	kustomize := os.Getenv("WARD_KUSTOMIZE")
	if kustomize == "" {
		t.Fatal("WARD_KUSTOMIZE is not set: run `make test`, or export WARD_KUSTOMIZE=$(hack/kustomize.sh)")
	}
	cfg, c, _ := apiservertest.Start(t)
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("no kubectl in KUBEBUILDER_ASSETS: run `make test` (hack/kube-assets.sh builds it): %v", err)
	}
	reg := registrytest.Start(t)
	sh := newShell(t)
	for name, target := range map[string]string{"kubectl": kubectl, "kustomize": kustomize} {
		if err := os.Symlink(target, filepath.Join(sh.bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	writeKubeconfig(t, cfg, filepath.Join(sh.home, ".kube", "config"))
	auth := base64.StdEncoding.EncodeToString([]byte(reg.Username + ":" + reg.Password))
	writeFile(t, filepath.Join(sh.home, ".docker", "config.json"), fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg.Host, auth))
	// The registry's CA beside the system's (SSL_CERT_FILE replaces them).
	bundle, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	regCA, err := os.ReadFile(reg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	caFile := writeFile(t, filepath.Join(sh.home, "ca-bundle.pem"), string(bundle)+"\n"+string(regCA))
	sh.env = append(sh.env, "SSL_CERT_FILE="+caFile)
	sh.timeout = "900" // make image builds ward: minutes with a cold build cache

	work := filepath.Join(sh.home, "work")
	checkout := filepath.Join(work, "ward")
	copyCheckout(t, filepath.Join("..", ".."), checkout)
	sh.run(t, work, "ward init my-policies >/dev/null")
	block := readmeBlock(t, "## Install in a cluster")
	image := reg.Host + "/platform/ward:v0.1.0"
	out := sh.run(t, checkout, strings.ReplaceAll(block, "registry.example.com/platform/ward:v0.1.0", image))
	for _, want := range []string{reg.Host + "/platform/ward@sha256:", "customresourcedefinition.apiextensions.k8s.io/policysources.ward.dev created",
		"deployment.apps/ward created", "configmap/prod-root created", "policysource.ward.dev/prod created", "NAME"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the install snippet did not print %q:\n%s", want, out)
		}
	}
	var d appsv1.Deployment
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: "ward-system", Name: "ward"}, &d); err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
		t.Fatalf("the Deployment runs %s, want %s", got, image)
	}
	var root corev1.ConfigMap
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: "ward-system", Name: "prod-root"}, &root); err != nil || !strings.Contains(root.Data["root.json"], `"_type":"root"`) && !strings.Contains(root.Data["root.json"], `"_type": "root"`) {
		t.Fatalf("prod-root: %v %.80q", err, root.Data["root.json"])
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref, remote.WithTransport(reg.Transport()), remote.WithAuth(&authn.Basic{Username: reg.Username, Password: reg.Password})); err != nil {
		t.Fatalf("the image is not in the registry: %v", err)
	}
}

// writeKubeconfig writes a kubeconfig for cfg (client certificate or
// token, as envtest gives).
func writeKubeconfig(t *testing.T, cfg *rest.Config, path string) {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	kc.CurrentContext = "test"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
}

// copyCheckout copies the files Git knows (tracked, or new and not
// ignored) of the checkout at src to dst: ward's source as a reader has it.
func copyCheckout(t *testing.T, src, dst string) {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = src
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		info, err := os.Lstat(filepath.Join(src, f))
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}
