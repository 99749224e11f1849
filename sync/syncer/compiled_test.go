package syncer

import (
	"testing"
	"time"

	"ward.dev/ward/admission"
	"ward.dev/ward/internal/tuftest"
	"ward.dev/ward/sync/source"
)

// A sync that finds the bundle it already enforces reuses the set it
// compiled; another version or digest is compiled.
func TestUnchangedBundleIsNotCompiledAgain(t *testing.T) {
	repo := tuftest.NewRepo(t, tuftest.Options{Envs: []string{"prod"}})
	repo.Publish(t, "prod", "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: allow}\nspec:\n  images: [{glob: \"reg.example.com/**\"}]\n  authorities: [{static: {action: pass}}]\n")
	clock := &tuftest.Clock{T: repo.Clock.T.Add(time.Hour)}
	s, err := New([]Spec{{Name: "prod", Env: "prod", Root: repo.Root(t), Source: source.Dir{Path: repo.Dir}}}, t.TempDir(), &admission.Policies{}, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	set := s.sources["prod"].verified.Set
	applied := *s.sources["prod"].applied
	for _, tc := range []struct {
		name           string
		digest         string
		version        int64
		wantTheSameSet bool
	}{
		{"same bundle", applied.Digest, applied.Version, true},
		{"other version", applied.Digest, applied.Version + 1, false},
		{"other digest", "sha256:0000", applied.Version, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.compiled("prod", tc.digest, tc.version)
			if (got == set) != tc.wantTheSameSet || (got != nil) != tc.wantTheSameSet {
				t.Fatalf("compiled set %p, enforced %p; want the same: %v", got, set, tc.wantTheSameSet)
			}
		})
	}
}
