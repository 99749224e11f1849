// Package tuftest makes real TUF repositories for tests: fresh in-memory
// keys, a repository created and signed by tufrepo, bundles built from
// policy files, and helpers that re-sign metadata the way an attacker
// holding some keys would.
package tuftest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"ward.dev/ward/bundle"
	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/bundle/tufrepo"
)

// NewSigner returns a fresh ECDSA P-256 signer.
func NewSigner(tb testing.TB) signature.SignerVerifier {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	return sv
}

// Clock is a settable clock for tests. NewRepo starts it at the wall
// clock, so metadata it signs is judged coherently by code that reads the
// wall clock (the ward binary, `ward tuf client`) as well as by code given
// this clock; tests move it explicitly to make metadata expire.
type Clock struct{ T time.Time }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return c.T }

// Repo is a repository in a temporary directory with all its keys.
type Repo struct {
	*tufrepo.Repo
	Dir     string
	Signers tufrepo.Signers
	Clock   *Clock
}

// Options shape NewRepo.
type Options struct {
	// Envs defaults to dev, staging, prod.
	Envs []string
	// Keys is how many keys each role gets (default 1; root 1).
	Keys map[string]int
	// Thresholds per role (default 1).
	Thresholds map[string]int
	// Expiry of newly signed metadata; zero fields keep defaults.
	Expiry tufrepo.Expiry
}

// NewRepo creates a repository signed with fresh keys.
func NewRepo(tb testing.TB, o Options) *Repo {
	tb.Helper()
	if len(o.Envs) == 0 {
		o.Envs = []string{"dev", "staging", "prod"}
	}
	// Never a fixed date: a repository signed at a fixed time expires on a
	// later day for every reader of the wall clock.
	clock := &Clock{T: time.Now().UTC().Truncate(time.Second)}
	dir := filepath.Join(tb.TempDir(), "tuf")
	signers := tufrepo.Signers{}
	for _, role := range append(tuflayout.TopLevelRoles(), o.Envs...) {
		n := o.Keys[role]
		if n < 1 {
			n = 1
		}
		for range n {
			signers[role] = append(signers[role], NewSigner(tb))
		}
	}
	r := tufrepo.Open(dir, tufrepo.WithClock(clock.Now), tufrepo.WithExpiry(o.Expiry))
	if err := r.Create(tufrepo.CreateOptions{Envs: o.Envs, Signers: signers, Thresholds: o.Thresholds}); err != nil {
		tb.Fatal(err)
	}
	return &Repo{Repo: r, Dir: dir, Signers: signers, Clock: clock}
}

// Root returns metadata/1.root.json, the root a client pins.
func (r *Repo) Root(tb testing.TB) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(r.Dir, "metadata", "1.root.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// Publish builds a bundle of one policy document with content and
// publishes it to env.
func (r *Repo) Publish(tb testing.TB, env, content string) *tufrepo.Release {
	tb.Helper()
	rel, err := r.Repo.Publish(env, Bundle(tb, map[string]string{"policy.yaml": content}), r.Signers)
	if err != nil {
		tb.Fatal(err)
	}
	return rel
}

// Bundle builds a bundle of the given policy files (name → content).
func Bundle(tb testing.TB, files map[string]string) []byte {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := bundle.Build(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return b.Bytes
}

// Path returns the absolute path of a repository file ("metadata/timestamp.json").
func (r *Repo) Path(name string) string { return filepath.Join(r.Dir, filepath.FromSlash(name)) }

// Read returns a repository file.
func (r *Repo) Read(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(r.Path(name))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// Write replaces a repository file.
func (r *Repo) Write(tb testing.TB, name string, data []byte) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(r.Path(name)), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(r.Path(name), data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// Resign loads a metadata file, lets mutate change it, signs it with the
// given signers only (as an attacker holding those keys would) and writes
// it under name. It returns the bytes written.
func Resign[T metadata.Roles](tb testing.TB, r *Repo, from, name string, empty *metadata.Metadata[T], mutate func(*T), signers ...signature.Signer) []byte {
	tb.Helper()
	md, err := empty.FromBytes(r.Read(tb, from))
	if err != nil {
		tb.Fatal(err)
	}
	mutate(&md.Signed)
	md.ClearSignatures()
	for _, s := range signers {
		if _, err := md.Sign(s); err != nil {
			tb.Fatal(err)
		}
	}
	data, err := md.ToBytes(true)
	if err != nil {
		tb.Fatal(err)
	}
	r.Write(tb, name, data)
	return data
}

// Versions reads the current version of each role from the repository:
// timestamp, snapshot, targets and each environment.
func (r *Repo) Versions(tb testing.TB) map[string]int64 {
	tb.Helper()
	ts, err := metadata.Timestamp().FromBytes(r.Read(tb, tuflayout.TimestampMetadata))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int64{tuflayout.Timestamp: ts.Signed.Version, tuflayout.Snapshot: ts.Signed.Meta["snapshot.json"].Version}
	snap, err := metadata.Snapshot().FromBytes(r.Read(tb, tuflayout.VersionedMetadata(tuflayout.Snapshot, out[tuflayout.Snapshot])))
	if err != nil {
		tb.Fatal(err)
	}
	for name, m := range snap.Signed.Meta {
		out[name[:len(name)-len(".json")]] = m.Version
	}
	return out
}

// Name is VersionedMetadata for a role at the version Versions reports
// plus delta.
func (r *Repo) Name(tb testing.TB, role string, delta int64) string {
	tb.Helper()
	v := r.Versions(tb)[role]
	if v == 0 {
		tb.Fatalf("role %s not found", role)
	}
	return tuflayout.VersionedMetadata(role, v+delta)
}

// ForgeSnapshot writes snapshot N+1 changed by mutate and a timestamp that
// lists it, signed with the online keys: an attacker who holds them.
func ForgeSnapshot(tb testing.TB, r *Repo, mutate func(*metadata.SnapshotType)) {
	tb.Helper()
	cur := r.Name(tb, tuflayout.Snapshot, 0)
	next := r.Name(tb, tuflayout.Snapshot, 1)
	var version int64
	data := Resign(tb, r, cur, next, metadata.Snapshot(), func(s *metadata.SnapshotType) {
		s.Version++
		version = s.Version
		mutate(s)
	}, r.Signers[tuflayout.Snapshot]...)
	sum := sha256.Sum256(data)
	Resign(tb, r, tuflayout.TimestampMetadata, tuflayout.TimestampMetadata, metadata.Timestamp(), func(ts *metadata.TimestampType) {
		ts.Version++
		ts.Meta["snapshot.json"] = &metadata.MetaFiles{Version: version, Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": sum[:]}}
	}, r.Signers[tuflayout.Timestamp]...)
}

// CountOneKeyTwice is an attack by the holder of the targets key and one
// key of env: env's role gets the key again under a second key ID and
// threshold 2, and a new env role is signed by the one key under both IDs.
// A client must count the key once.
func CountOneKeyTwice(tb testing.TB, r *Repo, env string) {
	tb.Helper()
	evil := r.Signers[env][0]
	pub, _ := evil.PublicKey()
	k, _ := metadata.KeyFromPublicKey(pub)
	alias := *k
	alias.Scheme, alias.Type = "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"
	aliasID, _ := alias.ID()
	Resign(tb, r, r.Name(tb, tuflayout.Targets, 0), r.Name(tb, tuflayout.Targets, 1), metadata.Targets(), func(tt *metadata.TargetsType) {
		tt.Version++
		tt.Delegations.Keys[aliasID] = &alias
		for i := range tt.Delegations.Roles {
			if tt.Delegations.Roles[i].Name == env {
				tt.Delegations.Roles[i].KeyIDs = append(tt.Delegations.Roles[i].KeyIDs, aliasID)
				tt.Delegations.Roles[i].Threshold = 2
			}
		}
	}, r.Signers[tuflayout.Targets]...)
	next := r.Name(tb, env, 1)
	data := Resign(tb, r, r.Name(tb, env, 0), next, metadata.Targets(), func(tt *metadata.TargetsType) { tt.Version++ }, evil)
	md, _ := metadata.Targets().FromBytes(data)
	md.Signatures = append(md.Signatures, metadata.Signature{KeyID: aliasID, Signature: md.Signatures[0].Signature})
	data, _ = md.ToBytes(true)
	r.Write(tb, next, data)
	ForgeSnapshot(tb, r, func(s *metadata.SnapshotType) {
		s.Meta["targets.json"].Version++
		s.Meta[env+".json"].Version++
	})
}

// ForgeRoot writes 2.root.json trusting only a new key for every role,
// signed by that key and one old root key: an attacker short of the old
// root's threshold.
func ForgeRoot(tb testing.TB, r *Repo) {
	tb.Helper()
	attacker := NewSigner(tb)
	pub, _ := attacker.PublicKey()
	k, _ := metadata.KeyFromPublicKey(pub)
	id, _ := k.ID()
	Resign(tb, r, "metadata/1.root.json", "metadata/2.root.json", metadata.Root(), func(rt *metadata.RootType) {
		rt.Version = 2
		rt.Keys[id] = k
		for _, role := range rt.Roles {
			role.KeyIDs = []string{id}
			role.Threshold = 1
		}
	}, attacker, r.Signers["root"][0])
}

// SignAsOtherEnv has from's key sign the next version of to's role, listing
// from's current bundle as to's with the given bundle version (and the
// online keys list it): an environment key reaching into another
// environment.
func SignAsOtherEnv(tb testing.TB, r *Repo, from, to, digest string, bundleVersion int64) {
	tb.Helper()
	next := r.Name(tb, to, 1)
	version := r.Versions(tb)[to] + 1
	fromPath, toPath := tuflayout.TargetPath(from), tuflayout.TargetPath(to)
	Resign(tb, r, r.Name(tb, from, 0), next, metadata.Targets(), func(tt *metadata.TargetsType) {
		tt.Version = version
		tf := tt.Targets[fromPath]
		delete(tt.Targets, fromPath)
		tf.Path = toPath
		tf.Custom, _ = (&tuflayout.Custom{Version: bundleVersion}).Raw()
		tt.Targets[toPath] = tf
	}, r.Signers[from]...)
	hexDigest := strings.TrimPrefix(digest, "sha256:")
	r.Write(tb, tuflayout.TargetFile(to, hexDigest), r.Read(tb, tuflayout.TargetFile(from, hexDigest)))
	ForgeSnapshot(tb, r, func(s *metadata.SnapshotType) { s.Meta[to+".json"].Version = version })
}

// KeepOneSignature re-signs env's current role with only its first key.
func KeepOneSignature(tb testing.TB, r *Repo, env string) {
	tb.Helper()
	name := r.Name(tb, env, 0)
	Resign(tb, r, name, name, metadata.Targets(), func(*metadata.TargetsType) {}, r.Signers[env][0])
}
