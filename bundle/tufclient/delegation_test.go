package tufclient_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/internal/tuftest"
)

// A "diamond": parent-a (team-a/*) and parent-b (team-b/*) both delegate
// to a role named release, each with a key of its own. release is signed
// by parent-a's key only, so it lists team-b's target without parent-b's
// authority. Looking up team-a's target first must not let release, now
// trusted through parent-a, vouch for team-b's target (the
// tuf-conformance test test_cached_role_is_verified_against_current_delegator).
func TestDownloadVerifiesRoleAgainstCurrentDelegator(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	expires := now.Add(24 * time.Hour)
	dir := t.TempDir()
	write := func(name string, data []byte) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := func(sv signature.SignerVerifier) *metadata.Key {
		pub, err := sv.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		k, err := metadata.KeyFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	id := func(k *metadata.Key) string {
		s, err := k.ID()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	signers := map[string]signature.SignerVerifier{}
	for _, r := range []string{"root", "targets", "snapshot", "timestamp", "parent-a", "parent-b", "release-a", "release-b"} {
		signers[r] = tuftest.NewSigner(t)
	}
	sign := func(md interface {
		Sign(signature.Signer) (*metadata.Signature, error)
		ToBytes(bool) ([]byte, error)
	}, role string) []byte {
		t.Helper()
		if _, err := md.Sign(signers[role]); err != nil {
			t.Fatal(err)
		}
		data, err := md.ToBytes(true)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	delegate := func(parent *metadata.Metadata[metadata.TargetsType], name, keyRole, pattern string) {
		k := key(signers[keyRole])
		if parent.Signed.Delegations == nil {
			parent.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
		}
		parent.Signed.Delegations.Keys[id(k)] = k
		parent.Signed.Delegations.Roles = append(parent.Signed.Delegations.Roles,
			metadata.DelegatedRole{Name: name, KeyIDs: []string{id(k)}, Threshold: 1, Paths: []string{pattern}})
	}

	root := metadata.Root(expires)
	for _, r := range []string{"root", "targets", "snapshot", "timestamp"} {
		if err := root.Signed.AddKey(key(signers[r]), r); err != nil {
			t.Fatal(err)
		}
	}
	rootData := sign(root, "root")
	write("metadata/1.root.json", rootData)

	targets := metadata.Targets(expires)
	delegate(targets, "parent-a", "parent-a", "team-a/*")
	delegate(targets, "parent-b", "parent-b", "team-b/*")
	parentA, parentB := metadata.Targets(expires), metadata.Targets(expires)
	delegate(parentA, "release", "release-a", "team-a/*")
	delegate(parentB, "release", "release-b", "team-b/*")
	release := metadata.Targets(expires)
	for name, content := range map[string]string{"team-a/trusted_root.json": "trusted A", "team-b/trusted_root.json": "malicious B"} {
		tf, err := metadata.TargetFile().FromBytes(name, []byte(content), "sha256")
		if err != nil {
			t.Fatal(err)
		}
		release.Signed.Targets[name] = tf
		sum := sha256.Sum256([]byte(content))
		write(path.Join("targets", path.Dir(name), hex.EncodeToString(sum[:])+"."+path.Base(name)), []byte(content))
	}
	write("metadata/1.targets.json", sign(targets, "targets"))
	write("metadata/1.parent-a.json", sign(parentA, "parent-a"))
	write("metadata/1.parent-b.json", sign(parentB, "parent-b"))
	write("metadata/1.release.json", sign(release, "release-a")) // parent-b's key never signed it

	snapshot := metadata.Snapshot(expires)
	for _, r := range []string{"targets", "parent-a", "parent-b", "release"} {
		snapshot.Signed.Meta[r+".json"] = metadata.MetaFile(1)
	}
	write("metadata/1.snapshot.json", sign(snapshot, "snapshot"))
	timestamp := metadata.Timestamp(expires)
	timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(1)
	write("metadata/timestamp.json", sign(timestamp, "timestamp"))

	newClient := func(t *testing.T) (*tufclient.Client, string) {
		state := t.TempDir()
		c, err := tufclient.New(rootData, tufclient.DirFetcher{Dir: dir}, state, tufclient.WithClock(func() time.Time { return now }))
		if err != nil {
			t.Fatal(err)
		}
		return c, t.TempDir()
	}

	// Each alone: A's verifies, B's does not.
	c, out := newClient(t)
	if err := c.Download(t.Context(), out, "team-a/trusted_root.json"); err != nil {
		t.Fatalf("team-a's target through parent-a: %v", err)
	}
	c, out = newClient(t)
	if err := c.Download(t.Context(), out, "team-b/trusted_root.json"); err == nil {
		t.Fatal("team-b's target was accepted though release is not signed by parent-b's key")
	}
	// Both in one run, A's first: B's must still be refused.
	c, out = newClient(t)
	if err := c.Download(t.Context(), out, "team-a/trusted_root.json", "team-b/trusted_root.json"); err == nil {
		t.Fatal("team-b's target was accepted through release as trusted via parent-a")
	}
	if _, err := os.Stat(filepath.Join(out, "team-b%2Ftrusted_root.json")); err == nil {
		t.Fatal("team-b's target was written")
	}
}
