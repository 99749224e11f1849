package bundle_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/object"

	"ward.dev/ward/bundle"
)

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var samplePolicies = map[string]string{
	"policies/a.yaml":          "kind: ImagePolicy\nname: a\n",
	"policies/team/b.yml":      "kind: ImagePolicy\nname: b\n",
	"policies/c.json":          `{"kind":"ValidationPolicy"}`,
	"policies/README.md":       "not a policy",
	"policies/.hidden.yaml":    "skipped",
	"policies/.git-ish/x.yaml": "skipped",
}

// commitAll makes a Git repository of dir with one commit at a fixed time.
func commitAll(t *testing.T, dir, remote string) string {
	t.Helper()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if remote != "" {
		if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{remote}}); err != nil {
			t.Fatal(err)
		}
	}
	wt, _ := repo.Worktree()
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	// A fixed commit time, for reproducible bytes: it becomes the
	// manifest's created field, which is parsed but never compared with a
	// clock, and these bundles are not signed into TUF metadata.
	when := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	h, err := wt.Commit("policies", &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@example.com", When: when}})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func TestBuildIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, samplePolicies)
	a, err := bundle.Build(filepath.Join(dir, "policies"))
	if err != nil {
		t.Fatal(err)
	}
	// Other file times must not matter.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "policies/a.yaml"), later, later)
	b, err := bundle.Build(filepath.Join(dir, "policies"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != b.Digest || !bytes.Equal(a.Bytes, b.Bytes) {
		t.Fatalf("two builds differ: %s vs %s", a.Digest, b.Digest)
	}
	// A copy elsewhere builds the same bytes.
	other := t.TempDir()
	writeFiles(t, other, samplePolicies)
	c, err := bundle.Build(filepath.Join(other, "policies"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Digest != a.Digest {
		t.Fatalf("copy elsewhere builds %s, want %s", c.Digest, a.Digest)
	}
	if a.Manifest.Created != "1970-01-01T00:00:00Z" || a.Manifest.Source.Commit != "" {
		t.Errorf("outside Git: created %q commit %q", a.Manifest.Created, a.Manifest.Source.Commit)
	}
	var paths []string
	for _, p := range a.Manifest.Policies {
		paths = append(paths, p.Path)
	}
	want := []string{"policies/a.yaml", "policies/c.json", "policies/team/b.yml"}
	if len(paths) != len(want) {
		t.Fatalf("policies %v, want %v", paths, want)
	}
	for i := range want {
		if paths[i] != want[i] {
			t.Fatalf("policies %v, want %v", paths, want)
		}
	}
}

func TestBuildFromGitIsReproducibleInAFreshClone(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, samplePolicies)
	commit := commitAll(t, dir, "https://user:secret-token@git.example.com/org/policies.git")
	a, err := bundle.Build(filepath.Join(dir, "policies"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest.Source.Commit != commit {
		t.Errorf("commit %q, want %q", a.Manifest.Source.Commit, commit)
	}
	if a.Manifest.Source.Repository != "https://git.example.com/org/policies.git" {
		t.Errorf("repository %q: credentials must be stripped", a.Manifest.Source.Repository)
	}
	if a.Manifest.Source.Path != "policies" || a.Manifest.Created != "2026-11-01T12:00:00Z" {
		t.Errorf("source %+v created %s", a.Manifest.Source, a.Manifest.Created)
	}
	clone := t.TempDir()
	if _, err := git.PlainClone(clone, false, &git.CloneOptions{URL: dir}); err != nil {
		t.Fatal(err)
	}
	// The clone's origin is a local path: set it to the same URL the
	// original has, as a clone from the real remote would.
	repo, _ := git.PlainOpen(clone)
	repo.DeleteRemote("origin")
	repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{"https://git.example.com/org/policies.git"}})
	b, err := bundle.Build(filepath.Join(clone, "policies"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != b.Digest {
		t.Fatalf("fresh clone builds %s, want %s", b.Digest, a.Digest)
	}
}

func TestBuildRefusesUncommittedChanges(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, samplePolicies)
	commitAll(t, dir, "")
	writeFiles(t, dir, map[string]string{"policies/a.yaml": "kind: ImagePolicy\nname: changed\n"})
	_, err := bundle.Build(filepath.Join(dir, "policies"))
	if !errors.Is(err, bundle.ErrUncommitted) {
		t.Fatalf("got %v, want ErrUncommitted", err)
	}
	if _, err := bundle.Build(filepath.Join(dir, "policies"), bundle.WithAllowUncommitted()); err != nil {
		t.Fatalf("with AllowUncommitted: %v", err)
	}
	os.Remove(filepath.Join(dir, "policies/a.yaml"))
	if _, err := bundle.Build(filepath.Join(dir, "policies")); !errors.Is(err, bundle.ErrUncommitted) {
		t.Fatalf("deleted file: got %v, want ErrUncommitted", err)
	}
}

func TestBuildRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"policies/a.yaml": "a: 1\n", "outside.yaml": "secret: 1\n"})
	if err := os.Symlink(filepath.Join(dir, "outside.yaml"), filepath.Join(dir, "policies/link.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Build(filepath.Join(dir, "policies")); err == nil {
		t.Fatal("a symlinked policy was bundled")
	}
}

func TestBuildRefusesOversizedPolicy(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"policies/big.yaml": string(make([]byte, 2048))})
	_, err := bundle.Build(filepath.Join(dir, "policies"), bundle.WithBuildLimits(bundle.Limits{MaxEntryBytes: 1024}))
	if !errors.Is(err, bundle.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func TestSanitizeRepositoryURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://x-access-token:ghp_secret@github.com/o/r.git": "https://github.com/o/r.git",
		"https://token@example.com/r":                          "https://example.com/r",
		"ssh://git:pw@example.com/r.git":                       "ssh://git@example.com/r.git",
		"git@github.com:o/r.git":                               "git@github.com:o/r.git",
		"/home/me/policies":                                    "",
		"file:///home/me/policies":                             "",
		"../policies":                                          "",
		"C:\\repo":                                             "",
	} {
		if got := bundle.SanitizeRepositoryURL(in); got != want {
			t.Errorf("SanitizeRepositoryURL(%q) = %q, want %q", in, got, want)
		}
	}
}
