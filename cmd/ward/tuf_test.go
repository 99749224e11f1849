package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ward.dev/ward/internal/tuftest"
)

// The tuf-conformance client protocol, against a repository served over
// HTTP on loopback.
func TestTUFClientProtocol(t *testing.T) {
	repo := tuftest.NewRepo(t, tuftest.Options{Envs: []string{"dev"}})
	rel := repo.Publish(t, "dev", "v: 1\n")
	srv := httptest.NewServer(http.FileServer(http.Dir(repo.Dir)))
	defer srv.Close()
	root := filepath.Join(t.TempDir(), "root.json")
	os.WriteFile(root, repo.Root(t), 0o644)
	meta := t.TempDir()
	targets := t.TempDir()
	base := []string{"tuf", "client", "--metadata-dir", meta, "--metadata-url", srv.URL + "/metadata"}

	mustWard(t, "tuf", "client", "--metadata-dir", meta, "init", root)
	mustWard(t, append(base, "refresh")...)
	for _, f := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		if _, err := os.Stat(filepath.Join(meta, f)); err != nil {
			t.Errorf("refresh did not store %s", f)
		}
	}
	mustWard(t, append(base, "download", "--target-name", "dev/bundle.tar.gz", "--target-base-url", srv.URL+"/targets", "--target-dir", targets)...)
	got, err := os.ReadFile(filepath.Join(targets, url.PathEscape("dev/bundle.tar.gz")))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != int(rel.Length) {
		t.Fatalf("downloaded %d bytes, want %d", len(got), rel.Length)
	}
	if _, err := os.Stat(filepath.Join(meta, "dev.json")); err != nil {
		t.Error("download did not store the delegated role")
	}
	// Judged at a reference time past the one-day timestamp's expiry (how
	// the suite's libfaketime runs reach it through the wrapper script),
	// the same repository is refused.
	later := fmt.Sprint(repo.Clock.Now().Add(48 * time.Hour).Unix())
	if code, _, _ := ward(t, append([]string{"tuf", "client", "--reference-time", later}, append(base[2:], "refresh")...)...); code != 1 {
		t.Fatalf("refresh past the timestamp's expiry: exit %d, want 1", code)
	}
	mustWard(t, append([]string{"tuf", "client", "--reference-time", repo.Clock.Now().Format(time.RFC3339)}, append(base[2:], "refresh")...)...)
	// A missing target and a tampered one fail with exit 1.
	if code, _, _ := ward(t, append(base, "download", "--target-name", "nope", "--target-base-url", srv.URL+"/targets", "--target-dir", targets)...); code != 1 {
		t.Fatalf("missing target: exit %d", code)
	}
	os.Remove(filepath.Join(targets, url.PathEscape("dev/bundle.tar.gz")))
	matches, _ := filepath.Glob(filepath.Join(repo.Dir, "targets/dev/*"))
	os.WriteFile(matches[0], []byte("tampered"), 0o644)
	if code, _, _ := ward(t, append(base, "download", "--target-name", "dev/bundle.tar.gz", "--target-base-url", srv.URL+"/targets", "--target-dir", targets)...); code != 1 {
		t.Fatalf("tampered target: exit %d", code)
	}
}
