package tuftest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// SigstoreTarget is a target of a Sigstore-style TUF repository.
type SigstoreTarget struct {
	Data []byte
	// Custom is the target's custom metadata (e.g. {"sigstore": {"usage":
	// "Fulcio"}}); nil for none.
	Custom json.RawMessage
}

// SigstoreRepo writes a TUF repository laid out as Sigstore's is
// (consistent snapshots: 1.root.json, 1.targets.json, 1.snapshot.json,
// timestamp.json, and targets/<sha256>.<name>) into dir, signed with one
// fresh key for every role, expiring at expires. It returns 1.root.json,
// the root a client pins.
func SigstoreRepo(tb testing.TB, dir string, targets map[string]SigstoreTarget, expires time.Time) []byte {
	tb.Helper()
	signer := NewSigner(tb)
	pub, err := signer.PublicKey()
	check(tb, err)
	key, err := metadata.KeyFromPublicKey(pub)
	check(tb, err)
	root := metadata.Root(expires)
	root.Signed.ConsistentSnapshot = true
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		check(tb, root.Signed.AddKey(key, role))
	}
	tgts := metadata.Targets(expires)
	check(tb, os.MkdirAll(filepath.Join(dir, "targets"), 0o755))
	for name, t := range targets {
		tf, err := metadata.TargetFile().FromBytes(name, t.Data, "sha256")
		check(tb, err)
		if t.Custom != nil {
			raw := t.Custom
			tf.Custom = &raw
		}
		tgts.Signed.Targets[name] = tf
		sum := sha256.Sum256(t.Data)
		check(tb, os.WriteFile(filepath.Join(dir, "targets", hex.EncodeToString(sum[:])+"."+name), t.Data, 0o644))
	}
	snap := metadata.Snapshot(expires)
	snap.Signed.Meta["targets.json"] = metadata.MetaFile(1)
	ts := metadata.Timestamp(expires)
	ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(1)
	_, err = root.Sign(signer)
	check(tb, err)
	_, err = tgts.Sign(signer)
	check(tb, err)
	_, err = snap.Sign(signer)
	check(tb, err)
	_, err = ts.Sign(signer)
	check(tb, err)
	check(tb, root.ToFile(filepath.Join(dir, "1.root.json"), true))
	check(tb, tgts.ToFile(filepath.Join(dir, "1.targets.json"), true))
	check(tb, snap.ToFile(filepath.Join(dir, "1.snapshot.json"), true))
	check(tb, ts.ToFile(filepath.Join(dir, "timestamp.json"), true))
	data, err := os.ReadFile(filepath.Join(dir, "1.root.json"))
	check(tb, err)
	return data
}

func check(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
