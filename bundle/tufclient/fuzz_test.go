package tufclient_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/internal/tuftest"
)

// mapFetcher serves a repository from memory.
type mapFetcher map[string][]byte

func (m mapFetcher) Fetch(_ context.Context, path string, maxLength int64) ([]byte, error) {
	data, ok := m[path]
	if !ok {
		return nil, fmt.Errorf("%s: %w", path, tufclient.ErrNotFound)
	}
	if int64(len(data)) > maxLength {
		return nil, tufclient.ErrTooLarge
	}
	return data, nil
}

func loadRepo(tb testing.TB, dir string) mapFetcher {
	tb.Helper()
	m := mapFetcher{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		m[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// FuzzUpdateMetadata feeds hostile bytes in place of one metadata file of
// a valid repository. The client must never panic, must refuse with a typed
// error, and may only ever return the genuine bundle.
func FuzzUpdateMetadata(f *testing.F) {
	repo := tuftest.NewRepo(f, tuftest.Options{Envs: []string{"dev"}})
	rel := repo.Publish(f, "dev", "v: 1\n")
	files := loadRepo(f, repo.Dir)
	v := repo.Versions(f)
	names := []string{
		tuflayout.TimestampMetadata,
		tuflayout.VersionedMetadata(tuflayout.Snapshot, v[tuflayout.Snapshot]),
		tuflayout.VersionedMetadata(tuflayout.Targets, v[tuflayout.Targets]),
		tuflayout.VersionedMetadata("dev", v["dev"]),
		"metadata/2.root.json",
	}
	for i, name := range names {
		if data, ok := files[name]; ok {
			f.Add(uint8(i), data)
		}
	}
	f.Add(uint8(0), []byte(`{"signed":{"_type":"timestamp"},"signatures":[]}`))
	f.Add(uint8(4), files["metadata/1.root.json"])
	root := repo.Root(f)
	now := repo.Clock.Now().Add(time.Minute)
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		m := mapFetcher{}
		for k, v := range files {
			m[k] = v
		}
		m[names[int(which)%len(names)]] = data
		c, err := tufclient.New(root, m, t.TempDir(), tufclient.WithClock(func() time.Time { return now }))
		if err != nil {
			t.Fatal(err)
		}
		target, err := c.Update(t.Context(), "dev")
		if err != nil {
			var ve *tufclient.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if target.Digest() != rel.Digest || !strings.HasPrefix(target.Digest(), "sha256:") {
			t.Fatalf("accepted %s, the genuine bundle is %s", target.Digest(), rel.Digest)
		}
	})
}
