package tuftest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// SigstoreTarget is a target of a Sigstore-style TUF repository.
type SigstoreTarget struct {
	Data []byte
	// Custom is the target's custom metadata (e.g. {"sigstore": {"usage":
	// "Fulcio"}}); nil for none.
	Custom json.RawMessage
}

// SigstoreMirror is a TUF repository laid out as Sigstore's is
// (consistent snapshots: 1.root.json, N.targets.json, N.snapshot.json,
// timestamp.json, and targets/<sha256>.<name>), signed with one key for
// every role.
type SigstoreMirror struct {
	Dir string
	// Root is 1.root.json, the root a client pins.
	Root    []byte
	signer  signature.Signer
	expires time.Time
	version int64
}

// NewSigstoreMirror writes a mirror holding targets into dir, its metadata
// expiring at expires.
func NewSigstoreMirror(tb testing.TB, dir string, targets map[string]SigstoreTarget, expires time.Time) *SigstoreMirror {
	tb.Helper()
	m := &SigstoreMirror{Dir: dir, signer: NewSigner(tb), expires: expires}
	pub, err := m.signer.PublicKey()
	check(tb, err)
	key, err := metadata.KeyFromPublicKey(pub)
	check(tb, err)
	root := metadata.Root(expires)
	root.Signed.ConsistentSnapshot = true
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		check(tb, root.Signed.AddKey(key, role))
	}
	_, err = root.Sign(m.signer)
	check(tb, err)
	check(tb, os.MkdirAll(filepath.Join(dir, "targets"), 0o755))
	check(tb, root.ToFile(filepath.Join(dir, "1.root.json"), true))
	m.Root, err = os.ReadFile(filepath.Join(dir, "1.root.json"))
	check(tb, err)
	m.Publish(tb, targets)
	return m
}

// Publish writes a new version of the targets, snapshot and timestamp
// holding targets.
func (m *SigstoreMirror) Publish(tb testing.TB, targets map[string]SigstoreTarget) {
	tb.Helper()
	m.version++
	v := m.version
	tgts := metadata.Targets(m.expires)
	tgts.Signed.Version = v
	for name, t := range targets {
		tf, err := metadata.TargetFile().FromBytes(name, t.Data, "sha256")
		check(tb, err)
		if t.Custom != nil {
			raw := t.Custom
			tf.Custom = &raw
		}
		tgts.Signed.Targets[name] = tf
		sum := sha256.Sum256(t.Data)
		check(tb, os.WriteFile(filepath.Join(m.Dir, "targets", hex.EncodeToString(sum[:])+"."+name), t.Data, 0o644))
	}
	snap := metadata.Snapshot(m.expires)
	snap.Signed.Version = v
	snap.Signed.Meta["targets.json"] = metadata.MetaFile(v)
	ts := metadata.Timestamp(m.expires)
	ts.Signed.Version = v
	ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(v)
	for _, sign := range []func() error{
		func() error { _, err := tgts.Sign(m.signer); return err },
		func() error { _, err := snap.Sign(m.signer); return err },
		func() error { _, err := ts.Sign(m.signer); return err },
	} {
		check(tb, sign())
	}
	check(tb, tgts.ToFile(filepath.Join(m.Dir, fmt.Sprintf("%d.targets.json", v)), true))
	check(tb, snap.ToFile(filepath.Join(m.Dir, fmt.Sprintf("%d.snapshot.json", v)), true))
	check(tb, ts.ToFile(filepath.Join(m.Dir, "timestamp.json"), true))
}

func check(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
