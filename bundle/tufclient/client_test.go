package tufclient_test

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"ward.dev/ward/bundle"
	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/bundle/tufrepo"
	"ward.dev/ward/internal/tuftest"
)

// fixture is a repository with dev at bundle v1, and a client that has
// accepted it.
type fixture struct {
	repo   *tuftest.Repo
	state  string
	client *tufclient.Client
}

func newFixture(t *testing.T, o tuftest.Options) *fixture {
	t.Helper()
	repo := tuftest.NewRepo(t, o)
	f := &fixture{repo: repo, state: t.TempDir()}
	f.client = f.newClient(t)
	repo.Publish(t, "dev", "v: 1\n")
	f.mustUpdate(t, "dev", 1)
	return f
}

// newClient is a client over the fixture's state directory, as after a restart.
func (f *fixture) newClient(t *testing.T, opts ...tufclient.Option) *tufclient.Client {
	t.Helper()
	opts = append([]tufclient.Option{tufclient.WithClock(func() time.Time { return f.repo.Clock.Now().Add(time.Minute) })}, opts...)
	c, err := tufclient.New(f.repo.Root(t), tufclient.DirFetcher{Dir: f.repo.Dir}, f.state, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) mustUpdate(t *testing.T, env string, version int64) *bundle.Verified {
	t.Helper()
	target, err := f.client.Update(t.Context(), env)
	if err != nil {
		t.Fatalf("update %s: %v", env, err)
	}
	v, err := bundle.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	if v.Version() != version {
		t.Fatalf("%s: got bundle version %d, want %d", env, v.Version(), version)
	}
	return v
}

// refused checks that an update fails with kind and that the bundle
// accepted before stays the last good one.
func (f *fixture) refused(t *testing.T, env string, kind error) {
	t.Helper()
	before, _ := os.ReadFile(filepath.Join(f.state, "versions.json"))
	_, err := f.client.Update(t.Context(), env)
	if !errors.Is(err, kind) {
		t.Fatalf("got %v, want %v", err, kind)
	}
	var ve *tufclient.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("untyped error %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(f.state, "versions.json"))
	if string(before) != string(after) {
		t.Fatalf("accepted versions changed on a refusal:\n%s\n%s", before, after)
	}
}

func TestUpdatePublishPromoteRollback(t *testing.T) {
	f := newFixture(t, tuftest.Options{})
	rel := f.repo.Publish(t, "dev", "v: 2\n")
	v := f.mustUpdate(t, "dev", 2)
	if v.Digest() != rel.Digest || string(v.Policies()[0].Data) != "v: 2\n" {
		t.Fatalf("dev serves %s %q", v.Digest(), v.Policies()[0].Data)
	}
	prom, err := f.repo.Promote("dev", "prod", f.repo.Signers)
	if err != nil {
		t.Fatal(err)
	}
	if prom.Digest != rel.Digest || prom.PromotedFrom.String() != "dev@v2" || prom.Version != 1 {
		t.Fatalf("promoted %+v", prom)
	}
	p := f.mustUpdate(t, "prod", 1)
	if p.Digest() != rel.Digest {
		t.Fatalf("prod serves %s, want the same bytes as dev %s", p.Digest(), rel.Digest)
	}
	back, err := f.repo.Rollback("dev", 1, f.repo.Signers)
	if err != nil {
		t.Fatal(err)
	}
	if back.Version != 3 || back.RestoredFrom != 1 {
		t.Fatalf("rollback %+v", back)
	}
	if v := f.mustUpdate(t, "dev", 3); string(v.Policies()[0].Data) != "v: 1\n" {
		t.Fatalf("rolled back dev serves %q", v.Policies()[0].Data)
	}
	// Publishing the bytes already served signs nothing.
	again := f.repo.Publish(t, "dev", "v: 1\n")
	if !again.Unchanged || again.Version != 3 {
		t.Fatalf("republish %+v", again)
	}
}

func TestMissingEnvironmentOrBundle(t *testing.T) {
	f := newFixture(t, tuftest.Options{})
	if _, err := f.client.Update(t.Context(), "qa"); !errors.Is(err, tufclient.ErrUnknownEnv) || !strings.Contains(err.Error(), "the repository has dev, staging, prod") {
		t.Fatalf("got %v, want ErrUnknownEnv listing the environments", err)
	}
	if _, err := f.client.Update(t.Context(), "staging"); !errors.Is(err, tufclient.ErrNotFound) {
		t.Fatalf("staging has no bundle yet: got %v", err)
	}
}

// --- The attacks. Each is refused and leaves the last good state. ---

func TestAttackTimestampRollback(t *testing.T) {
	f := newFixture(t, tuftest.Options{})
	old := f.repo.Read(t, tuflayout.TimestampMetadata)
	f.repo.Publish(t, "dev", "v: 2\n")
	f.mustUpdate(t, "dev", 2)
	f.repo.Write(t, tuflayout.TimestampMetadata, old)
	f.refused(t, "dev", tufclient.ErrRollback)
}

func TestAttackSnapshotRollback(t *testing.T) {
	f := newFixture(t, tuftest.Options{})
	f.repo.Publish(t, "dev", "v: 2\n")
	f.mustUpdate(t, "dev", 2)
	// A new timestamp pointing at the previous snapshot.
	oldSnap := f.repo.Versions(t)[tuflayout.Snapshot] - 1
	data := f.repo.Read(t, tuflayout.VersionedMetadata(tuflayout.Snapshot, oldSnap))
	sum := sha256.Sum256(data)
	tuftest.Resign(t, f.repo, tuflayout.TimestampMetadata, tuflayout.TimestampMetadata, metadata.Timestamp(), func(ts *metadata.TimestampType) {
		ts.Version++
		ts.Meta["snapshot.json"] = &metadata.MetaFiles{Version: oldSnap, Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": sum[:]}}
	}, f.repo.Signers[tuflayout.Timestamp]...)
	f.refused(t, "dev", tufclient.ErrRollback)
}

func TestAttackTargetsRollback(t *testing.T) {
	f := newFixture(t, tuftest.Options{})
	// Move targets to v2 (an environment key rotation re-signs it).
	if _, err := f.repo.Rotate(map[string]tufrepo.KeyChange{"staging": {Threshold: 1}}, f.repo.Signers); err != nil {
		t.Fatal(err)
	}
	f.mustUpdate(t, "dev", 1)
	tuftest.ForgeSnapshot(t, f.repo, func(s *metadata.SnapshotType) { s.Meta["targets.json"].Version = 1 })
	f.refused(t, "dev", tufclient.ErrRollback)
}

func TestAttackEnvironmentRoleRollback(t *testing.T) {
	f := newFixture(t, tuftest.Options{})
	f.repo.Publish(t, "dev", "v: 2\n")
	f.mustUpdate(t, "dev", 2)
	tuftest.ForgeSnapshot(t, f.repo, func(s *metadata.SnapshotType) { s.Meta["dev.json"].Version-- })
	f.refused(t, "dev", tufclient.ErrRollback)
}

// The dev key signs a new role version that lists an older bundle version:
// TUF accepts the role, ward refuses the bundle version, also after a restart.
func TestAttackBundleVersionRollbackSurvivesRestart(t *testing.T) {
	f := newFixture(t, tuftest.Options{})
	f.repo.Publish(t, "dev", "v: 2\n")
	f.mustUpdate(t, "dev", 2)
	f.repo.Publish(t, "dev", "v: 3\n")
	f.mustUpdate(t, "dev", 3)
	// The attacker re-signs role version N+1 listing bundle v2's target.
	devV := f.repo.Versions(t)["dev"]
	old := f.repo.Read(t, tuflayout.VersionedMetadata("dev", devV-1))
	f.repo.Write(t, tuflayout.VersionedMetadata("dev", devV+1), old)
	tuftest.Resign(t, f.repo, tuflayout.VersionedMetadata("dev", devV+1), tuflayout.VersionedMetadata("dev", devV+1), metadata.Targets(), func(tt *metadata.TargetsType) {
		tt.Version = devV + 1
	}, f.repo.Signers["dev"]...)
	tuftest.ForgeSnapshot(t, f.repo, func(s *metadata.SnapshotType) { s.Meta["dev.json"].Version = devV + 1 })
	f.refused(t, "dev", tufclient.ErrRollback)
	// A restarted client reads the accepted version from its state.
	f.client = f.newClient(t)
	f.refused(t, "dev", tufclient.ErrRollback)
}

func TestAttackFreeze(t *testing.T) {
	short := time.Hour
	tests := []struct {
		role   string
		expiry tufrepo.Expiry
	}{
		{tuflayout.Timestamp, tufrepo.Expiry{Timestamp: short}},
		{tuflayout.Snapshot, tufrepo.Expiry{Snapshot: short}},
		{tuflayout.Targets, tufrepo.Expiry{Targets: short}},
		{"dev", tufrepo.Expiry{Env: short}},
	}
	for _, tt := range tests {
		t.Run("expired "+tt.role, func(t *testing.T) {
			f := newFixture(t, tuftest.Options{Expiry: tt.expiry})
			f.client = f.newClient(t, tufclient.WithClock(func() time.Time { return f.repo.Clock.Now().Add(2 * time.Hour) }))
			_, err := f.client.Update(t.Context(), "dev")
			if !errors.Is(err, tufclient.ErrExpired) || !strings.Contains(err.Error(), tt.role) {
				t.Fatalf("got %v, want ErrExpired naming %s", err, tt.role)
			}
		})
	}
}

// Mix and match: the snapshot lists dev role v2, the server hands out v1's
// bytes under that name.
func TestAttackMixAndMatch(t *testing.T) {
	f := newFixture(t, tuftest.Options{})
	f.repo.Publish(t, "dev", "v: 2\n")
	devV := f.repo.Versions(t)["dev"]
	f.repo.Write(t, tuflayout.VersionedMetadata("dev", devV), f.repo.Read(t, tuflayout.VersionedMetadata("dev", devV-1)))
	f.refused(t, "dev", tufclient.ErrRollback)
}

func TestAttackTamperedBundle(t *testing.T) {
	f := newFixture(t, tuftest.Options{})
	rel := f.repo.Publish(t, "dev", "v: 2\n")
	name := tuflayout.TargetFile("dev", strings.TrimPrefix(rel.Digest, "sha256:"))
	data := f.repo.Read(t, name)
	data[len(data)/2] ^= 0xff
	f.repo.Write(t, name, data)
	f.refused(t, "dev", tufclient.ErrMismatch)
}

func TestAttackEndlessData(t *testing.T) {
	t.Run("endless timestamp", func(t *testing.T) {
		f := newFixture(t, tuftest.Options{})
		f.repo.Write(t, tuflayout.TimestampMetadata, make([]byte, 1<<20))
		f.refused(t, "dev", tufclient.ErrTooLarge)
	})
	t.Run("endless bundle", func(t *testing.T) {
		f := newFixture(t, tuftest.Options{})
		rel := f.repo.Publish(t, "dev", "v: 2\n")
		name := tuflayout.TargetFile("dev", strings.TrimPrefix(rel.Digest, "sha256:"))
		f.repo.Write(t, name, append(f.repo.Read(t, name), make([]byte, 1<<20)...))
		f.refused(t, "dev", tufclient.ErrTooLarge)
	})
	t.Run("signed length over the bundle limit", func(t *testing.T) {
		f := newFixture(t, tuftest.Options{})
		f.client = f.newClient(t, tufclient.WithLimits(tufclient.Limits{Bundle: 64}))
		f.repo.Publish(t, "dev", "v: 2\n")
		f.refused(t, "dev", tufclient.ErrTooLarge)
	})
}

func TestAttackBelowThreshold(t *testing.T) {
	f := newFixture(t, tuftest.Options{Keys: map[string]int{"dev": 2}, Thresholds: map[string]int{"dev": 2}})
	f.repo.Publish(t, "dev", "v: 2\n")
	tuftest.KeepOneSignature(t, f.repo, "dev")
	f.refused(t, "dev", tufclient.ErrSignature)
}

// One key listed under two key IDs, threshold 2: its two signatures count once.
func TestAttackSameKeyCountedOnce(t *testing.T) {
	f := newFixture(t, tuftest.Options{})
	tuftest.CountOneKeyTwice(t, f.repo, "dev")
	f.refused(t, "dev", tufclient.ErrSignature)
}

// The dev key signs prod's role, and dev's role lists a prod path: neither
// gets a bundle into prod.
func TestAttackEnvKeySignsAnotherEnv(t *testing.T) {
	t.Run("dev key signs prod role", func(t *testing.T) {
		f := newFixture(t, tuftest.Options{})
		if _, err := f.repo.Promote("dev", "prod", f.repo.Signers); err != nil {
			t.Fatal(err)
		}
		f.mustUpdate(t, "prod", 1)
		evil := f.repo.Publish(t, "dev", "evil: true\n")
		tuftest.SignAsOtherEnv(t, f.repo, "dev", "prod", evil.Digest, 2)
		f.refused(t, "prod", tufclient.ErrSignature)
	})
	t.Run("dev role lists a prod path", func(t *testing.T) {
		f := newFixture(t, tuftest.Options{})
		evil := tuftest.Bundle(t, map[string]string{"policy.yaml": "evil: true\n"})
		sum := sha256.Sum256(evil)
		f.repo.Write(t, tuflayout.TargetFile("prod", hex.EncodeToString(sum[:])), evil)
		dName := f.repo.Name(t, "dev", 0)
		dNext := f.repo.Name(t, "dev", 1)
		tuftest.Resign(t, f.repo, dName, dNext, metadata.Targets(), func(tt *metadata.TargetsType) {
			tt.Version++
			tf, _ := metadata.TargetFile().FromBytes("prod/bundle.tar.gz", evil, "sha256")
			tf.Custom, _ = (&tuflayout.Custom{Version: 1}).Raw()
			tt.Targets["prod/bundle.tar.gz"] = tf
		}, f.repo.Signers["dev"]...)
		tuftest.ForgeSnapshot(t, f.repo, func(s *metadata.SnapshotType) { s.Meta["dev.json"].Version++ })
		// prod has no bundle of its own: the dev-signed one is not found.
		f.refused(t, "prod", tufclient.ErrNotFound)
		f.mustUpdate(t, "dev", 1)
	})
}

func TestAttackRootRotationWithoutOldThreshold(t *testing.T) {
	f := newFixture(t, tuftest.Options{Keys: map[string]int{"root": 3}, Thresholds: map[string]int{"root": 2}})
	// 2.root.json trusting only the attacker's key, signed by it and by
	// one (of two needed) old root keys.
	tuftest.ForgeRoot(t, f.repo)
	f.refused(t, "dev", tufclient.ErrSignature)
}

func TestRootRotationIsFollowed(t *testing.T) {
	f := newFixture(t, tuftest.Options{Keys: map[string]int{"root": 3}, Thresholds: map[string]int{"root": 2}})
	newRoot, newTS := tuftest.NewSigner(t), tuftest.NewSigner(t)
	rootPub, _ := newRoot.PublicKey()
	tsPub, _ := newTS.PublicKey()
	signers := tufrepo.Signers{}
	for k, v := range f.repo.Signers {
		signers[k] = v
	}
	signers["root"] = append(f.repo.Signers["root"][:2:2], newRoot)
	signers["timestamp"] = []signature.Signer{newTS}
	rot, err := f.repo.Rotate(map[string]tufrepo.KeyChange{
		"root":      {Keys: []crypto.PublicKey{rootPub}, Threshold: 1},
		"timestamp": {Keys: []crypto.PublicKey{tsPub}},
	}, signers)
	if err != nil {
		t.Fatal(err)
	}
	if rot.RootVersion != 2 {
		t.Fatalf("root v%d", rot.RootVersion)
	}
	f.repo.Signers = signers
	f.repo.Publish(t, "dev", "v: 2\n")
	f.mustUpdate(t, "dev", 2)
	// The old timestamp key no longer counts.
	tuftest.Resign(t, f.repo, tuflayout.TimestampMetadata, tuflayout.TimestampMetadata, metadata.Timestamp(), func(ts *metadata.TimestampType) { ts.Version++ }, f.repo.Signers["snapshot"]...)
	f.refused(t, "dev", tufclient.ErrSignature)
}
