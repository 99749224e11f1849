package main

import (
	"bytes"
	"encoding/json"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"ward.dev/ward/bundle/keys"
)

// ward runs the command line in-process and returns its exit code and output.
func ward(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	// Synchronized: controller-runtime's global logger, which every run
	// sets, may still be written by goroutines another run started.
	var out, errOut syncBuffer
	code := run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func mustWard(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := ward(t, args...)
	if code != 0 {
		t.Fatalf("ward %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// initRepo runs ward init in a temporary folder and commits it.
func initRepo(t *testing.T, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "policies-repo")
	mustWard(t, append([]string{"init", dir}, extra...)...)
	gitCommit(t, dir, "initial")
	return dir
}

func gitCommit(t *testing.T, dir, msg string) {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		if repo, err = git.PlainInit(dir, false); err != nil {
			t.Fatal(err)
		}
	}
	wt, _ := repo.Worktree()
	if err := wt.AddGlob("policies"); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Commit(msg, &git.CommitOptions{AllowEmptyCommits: true, Author: &object.Signature{Name: "t", Email: "t@example.com"}}); err != nil {
		t.Fatal(err)
	}
}

func verifiedJSON(t *testing.T, args ...string) verified {
	t.Helper()
	var v verified
	out := mustWard(t, append([]string{"verify", "-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return v
}

func TestNewcomerPath(t *testing.T) {
	dir := initRepo(t)
	for _, f := range []string{"ward.yaml", ".gitignore", "policies/example-image-policy.yaml", "tuf/metadata/1.root.json", "tuf/metadata/timestamp.json", "keys/root-2.key", "keys/prod.pub"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("init did not make %s", f)
		}
	}
	if info, _ := os.Stat(filepath.Join(dir, "keys/dev.key")); info.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", info.Mode().Perm())
	}
	out := mustWard(t, "publish", "--env", "dev", dir)
	if !strings.Contains(out, "published dev v1") || !strings.Contains(out, "sha256:") {
		t.Fatalf("publish printed %q", out)
	}
	// Edit, commit, publish again.
	p := filepath.Join(dir, "policies/example-image-policy.yaml")
	data, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(data, []byte("mode: enforce"), []byte("mode: warn"), 1), 0o644)
	if code, _, errOut := ward(t, "publish", "--env", "dev", dir); code != 2 || !strings.Contains(errOut, "uncommitted") {
		t.Fatalf("publishing uncommitted changes: exit %d %q", code, errOut)
	}
	gitCommit(t, dir, "warn")
	mustWard(t, "publish", "--env", "dev", dir)
	mustWard(t, "promote", "--from", "dev", "--to", "staging", dir)
	dev := verifiedJSON(t, "--env", "dev", dir)
	staging := verifiedJSON(t, "--env", "staging", dir)
	if dev.Version != 2 || staging.Version != 1 || dev.Digest != staging.Digest || staging.PromotedFrom != "dev@v2" {
		t.Fatalf("dev %+v staging %+v", dev, staging)
	}
	a := mustWard(t, "bundle", "build", dir, "-o", filepath.Join(t.TempDir(), "a.tgz"))
	b := mustWard(t, "bundle", "build", dir, "-o", filepath.Join(t.TempDir(), "b.tgz"))
	if a != b || strings.TrimSpace(a) != dev.Digest {
		t.Fatalf("builds %q %q, dev serves %s", a, b, dev.Digest)
	}
	mustWard(t, "rollback", "--env", "dev", "--to-version", "1", dir)
	if v := verifiedJSON(t, "--env", "dev", dir); v.Version != 3 {
		t.Fatalf("after rollback dev is v%d", v.Version)
	}
	if out := mustWard(t, "history", "--env", "dev", dir); !strings.Contains(out, "restores v1") {
		t.Fatalf("history %q", out)
	}
	mustWard(t, "timestamp", "refresh", dir)
	mustWard(t, "root", "rotate", "--generate", "timestamp", "--generate", "prod", dir)
	mustWard(t, "promote", "--from", "staging", "--to", "prod", dir)
	if v := verifiedJSON(t, "--env", "prod", dir); v.Digest != dev.Digest {
		t.Fatalf("prod %+v", v)
	}
}

func TestBadInputExitsTwoWithOneLine(t *testing.T) {
	dir := initRepo(t)
	mustWard(t, "publish", "--env", "dev", dir)
	corrupt := initRepo(t)
	os.WriteFile(filepath.Join(corrupt, "tuf/metadata/timestamp.json"), []byte("{not json"), 0o644)
	nokeys := initRepo(t)
	os.Remove(filepath.Join(nokeys, "keys/snapshot.key"))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"wrong env", []string{"publish", "--env", "qa", dir}, `unknown environment "qa"`},
		{"missing env flag", []string{"publish", dir}, "--env is required"},
		{"missing key file", []string{"publish", "--env", "dev", nokeys}, "role snapshot"},
		{"key of another role", []string{"promote", "--from", "dev", "--to", "staging", "--key", "staging=" + filepath.Join(dir, "keys/prod.key"), dir}, "not enough signing keys"},
		{"bad --key", []string{"publish", "--env", "dev", "--key", "dev", dir}, "want ROLE=PATH"},
		{"corrupt repository", []string{"publish", "--env", "dev", corrupt}, "repository does not verify"},
		{"no ward.yaml", []string{"publish", "--env", "dev", t.TempDir()}, "no ward.yaml"},
		{"promote from empty env", []string{"promote", "--from", "staging", "--to", "prod", dir}, "has no bundle yet"},
		{"rollback to the future", []string{"rollback", "--env", "dev", "--to-version", "7", dir}, "current version is 1"},
		{"init twice", []string{"init", dir}, "already has a ward.yaml"},
		{"bad threshold", []string{"init", "--threshold", "root=4", t.TempDir()}, "threshold 4 is more than"},
		{"missing bundle file", []string{"bundle", "verify", filepath.Join(dir, "nope.tgz")}, "nope.tgz"},
		{"bad output format", []string{"version", "-o", "yaml"}, "unknown output format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := ward(t, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2: %s", code, errOut)
			}
			if strings.Count(errOut, "ward: ") != 1 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("stderr %q, want one line containing %q", errOut, tt.want)
			}
		})
	}
}

func TestVerifyFailuresExitOne(t *testing.T) {
	dir := initRepo(t)
	mustWard(t, "publish", "--env", "dev", dir)
	broken := filepath.Join(t.TempDir(), "broken.tgz")
	os.WriteFile(broken, []byte("not a bundle"), 0o644)
	if code, _, errOut := ward(t, "bundle", "verify", broken); code != 1 || !strings.Contains(errOut, "bundle refused") {
		t.Fatalf("bundle verify of garbage: exit %d %q", code, errOut)
	}
	if code, _, _ := ward(t, "verify", "--env", "staging", dir); code != 1 {
		t.Fatalf("verify of an env with no bundle: exit %d", code)
	}
	// Tamper with dev's bundle bytes.
	matches, _ := filepath.Glob(filepath.Join(dir, "tuf/targets/dev/*.bundle.tar.gz"))
	os.WriteFile(matches[0], []byte("tampered"), 0o644)
	if code, _, errOut := ward(t, "verify", "--env", "dev", dir); code != 1 || !strings.Contains(errOut, "dev") {
		t.Fatalf("verify of a tampered bundle: exit %d %q", code, errOut)
	}
}

func TestBundleInspect(t *testing.T) {
	dir := initRepo(t)
	file := filepath.Join(t.TempDir(), "b.tgz")
	digest := strings.TrimSpace(mustWard(t, "bundle", "build", dir, "-o", file))
	out := mustWard(t, "bundle", "inspect", file, "-o", "json")
	var v struct {
		Digest   string
		Manifest struct{ Policies []struct{ Path string } }
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Digest != digest || len(v.Manifest.Policies) != 1 {
		t.Fatalf("inspect %s: %v", out, err)
	}
	if out := mustWard(t, "bundle", "verify", file); !strings.HasPrefix(out, "ok "+digest) {
		t.Fatalf("verify %q", out)
	}
}

func TestKeysGenerateAndEncryptedKeys(t *testing.T) {
	t.Setenv("WARD_KEY_PASSWORD", "correct horse")
	dir := initRepo(t, "--envs", "dev")
	data, _ := os.ReadFile(filepath.Join(dir, "keys/dev.key"))
	if !strings.Contains(string(data), "ENCRYPTED SIGSTORE PRIVATE KEY") {
		t.Fatalf("key not encrypted:\n%s", data)
	}
	mustWard(t, "publish", "--env", "dev", dir)
	t.Setenv("WARD_KEY_PASSWORD", "wrong")
	if code, _, errOut := ward(t, "publish", "--env", "dev", "--allow-uncommitted", dir); code != 2 || !strings.Contains(errOut, "wrong password") {
		t.Fatalf("wrong password: exit %d %q", code, errOut)
	}
	out := mustWard(t, "keys", "generate", filepath.Join(t.TempDir(), "k.key"))
	if !strings.Contains(out, "key ID:") {
		t.Fatalf("keys generate printed %q", out)
	}
}

func TestVersion(t *testing.T) {
	if out := mustWard(t, "version"); !strings.Contains(out, "ward ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version %q", out)
	}
	if out := mustWard(t, "--version"); !strings.HasPrefix(out, "ward ") {
		t.Fatalf("--version %q", out)
	}
}

func TestRootRotateWithGivenKeys(t *testing.T) {
	dir := initRepo(t, "--envs", "dev")
	mustWard(t, "publish", "--env", "dev", dir)
	keysDir := t.TempDir()
	a, b := filepath.Join(keysDir, "a.key"), filepath.Join(keysDir, "b.key")
	mustWard(t, "keys", "generate", a)
	mustWard(t, "keys", "generate", b)
	before, _ := os.ReadFile(filepath.Join(dir, "ward.yaml"))

	// One current root key of the two needed: refused, nothing changed.
	code, _, errOut := ward(t, "root", "rotate", "--key", "root="+filepath.Join(dir, "keys/root-1.key"), "--set", "root="+a+","+b, "--threshold", "root=2", dir)
	if code != 2 || !strings.Contains(errOut, "current root keys") {
		t.Fatalf("rotation without the old threshold: exit %d %q", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ward.yaml")); !bytes.Equal(before, after) {
		t.Fatal("a refused rotation changed ward.yaml")
	}
	if _, err := os.Stat(filepath.Join(dir, "tuf/metadata/2.root.json")); err == nil {
		t.Fatal("a refused rotation wrote 2.root.json")
	}

	out := mustWard(t, "root", "rotate", "--set", "root="+a+","+b, "--threshold", "root=2", "--threshold", "dev=1", dir)
	if !strings.Contains(out, "root v2; signed anew: root, targets, dev, snapshot, timestamp") {
		t.Fatalf("rotate printed %q", out)
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, "ward.yaml"))
	if !strings.Contains(string(cfg), a) || strings.Contains(string(cfg), "root-1.key") {
		t.Fatalf("ward.yaml not updated:\n%s", cfg)
	}
	// A client pinned to root v1 follows the chain.
	if v := verifiedJSON(t, "--env", "dev", "--root", filepath.Join(dir, "tuf/metadata/1.root.json"), dir); v.Version != 1 {
		t.Fatalf("%+v", v)
	}
	// The next rotation needs the new root keys, which ward.yaml now lists.
	mustWard(t, "root", "rotate", dir)
}

// keys/cosign.key is in cosign's own format: cosign's key loader reads it
// with an empty password (COSIGN_PASSWORD=""), as `cosign sign --key`
// does, when ward init ran without WARD_KEY_PASSWORD; and ward reads it too.
func TestCosignKeyReadByCosign(t *testing.T) {
	dir := initRepo(t, "--envs", "dev")
	data, err := os.ReadFile(filepath.Join(dir, "keys", "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cosign.LoadPrivateKey(data, []byte(""), nil); err != nil {
		t.Fatalf("cosign's loader refuses keys/cosign.key: %v", err)
	}
	if _, err := keys.Load(t.Context(), filepath.Join(dir, "keys", "cosign.key")); err != nil {
		t.Fatalf("ward's loader: %v", err)
	}
}
