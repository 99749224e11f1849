package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"ward.dev/ward/admission"
	"ward.dev/ward/internal/gittest"
	"ward.dev/ward/internal/policyrepo"
	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

// ward publish pushes the signed TUF repository to a Git branch and an OCI
// artifact, and controllers following either get the new bundle.
func TestPublishPushesToRemotes(t *testing.T) {
	srv := gittest.Start(t)
	gitURL := srv.NewRepo(t, "tuf.git")
	host := signtest.Registry(t, true)
	ociURL := "oci://" + host + "/platform/tuf:dev"
	t.Setenv("WARD_GIT_USERNAME", srv.User)
	t.Setenv("WARD_GIT_PASSWORD", srv.Pass)

	dir := initRepo(t)
	repo, err := policyrepo.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo.Config.Remotes = []policyrepo.Remote{{Git: &policyrepo.GitRemote{URL: gitURL, Branch: "tuf"}}, {OCI: &policyrepo.OCIRemote{URL: ociURL}}}
	if err := repo.Save(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := ward(t, "publish", "--env", "dev", dir)
	if code != 0 || !strings.Contains(errOut, "pushed commit") || !strings.Contains(errOut, "pushed sha256:") {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
	}
	root, err := os.ReadFile(filepath.Join(dir, "tuf", "metadata", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	sources := []syncer.Spec{
		{Name: "git", Env: "dev", Root: root, Source: &source.Git{URL: gitURL, Branch: "tuf", Auth: &githttp.BasicAuth{Username: srv.User, Password: srv.Pass}, CacheDir: filepath.Join(t.TempDir(), "git")}},
		{Name: "oci", Env: "dev", Root: root, Source: &source.OCI{URL: ociURL}},
	}
	s, err := syncer.New(sources, t.TempDir(), &admission.Policies{})
	if err != nil {
		t.Fatal(err)
	}
	versions := func() []int64 {
		var v []int64
		for _, name := range []string{"git", "oci"} {
			if err := s.Sync(t.Context(), name); err != nil {
				t.Fatalf("sync %s: %v", name, err)
			}
		}
		for _, st := range s.Statuses() {
			v = append(v, st.Applied.Version)
		}
		return v
	}
	if v := versions(); v[0] != 1 || v[1] != 1 {
		t.Fatalf("versions after the first publish: %v", v)
	}
	writeFile(t, filepath.Join(dir, "policies", "settings.yaml"), "apiVersion: policy.ward.dev/v1\nkind: Settings\nmetadata: {name: s}\nspec: {exemptNamespaces: [kube-system]}\n")
	gitCommit(t, dir, "exempt kube-system")
	mustWard(t, "publish", "--env", "dev", dir)
	if v := versions(); v[0] != 2 || v[1] != 2 {
		t.Fatalf("versions after the second publish: %v", v)
	}
	// --no-push leaves the remotes as they were.
	mustWard(t, "timestamp", "refresh", "--no-push", dir)
	code, _, errOut = ward(t, "timestamp", "refresh", dir)
	if code != 0 || !strings.Contains(errOut, "pushed") {
		t.Fatalf("timestamp refresh: exit %d %s", code, errOut)
	}
}
