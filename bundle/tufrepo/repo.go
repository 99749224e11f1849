package tufrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"ward.dev/ward/bundle/keys"
	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/bundle/tuflayout"
)

// MaxMetadataBytes bounds each metadata file the repository reads.
const MaxMetadataBytes = 8 << 20

// ErrThreshold is returned when the given keys cannot sign a role to its
// threshold.
var ErrThreshold = errors.New("not enough signing keys")

// ErrUnknownEnv is returned for an environment the repository has no role for.
var ErrUnknownEnv = errors.New("unknown environment")

// ErrCorrupt is returned when the repository on disk does not verify.
var ErrCorrupt = errors.New("repository does not verify")

// Signers maps a role name (root, targets, snapshot, timestamp or an
// environment) to the signers available for it.
type Signers map[string][]signature.Signer

// Repo is a TUF repository in a directory.
type Repo struct {
	dir    string
	now    func() time.Time
	expiry Expiry
}

// Option configures a Repo.
type Option func(*Repo)

// WithClock sets the reference time for expiry (default time.Now).
func WithClock(now func() time.Time) Option { return func(r *Repo) { r.now = now } }

// WithExpiry sets how long newly signed metadata stays valid; zero fields
// keep DefaultExpiry.
func WithExpiry(e Expiry) Option { return func(r *Repo) { r.expiry = e } }

// Open returns the repository in dir. It reads nothing yet; each operation
// loads and verifies the repository first.
func Open(dir string, opts ...Option) *Repo {
	r := &Repo{dir: dir, now: time.Now}
	for _, o := range opts {
		o(r)
	}
	r.expiry = r.expiry.withDefaults()
	return r
}

// Dir is the repository's directory.
func (r *Repo) Dir() string { return r.dir }

// state is a loaded, verified repository.
type state struct {
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	envs      map[string]*metadata.Metadata[metadata.TargetsType]
}

func (s *state) envRole(env string) (*metadata.DelegatedRole, error) {
	if s.targets.Signed.Delegations != nil {
		for i := range s.targets.Signed.Delegations.Roles {
			if s.targets.Signed.Delegations.Roles[i].Name == env {
				return &s.targets.Signed.Delegations.Roles[i], nil
			}
		}
	}
	return nil, fmt.Errorf("%w %q (the repository has %s)", ErrUnknownEnv, env, strings.Join(s.envNames(), ", "))
}

func (s *state) envNames() []string {
	var names []string
	if s.targets.Signed.Delegations != nil {
		for _, r := range s.targets.Signed.Delegations.Roles {
			names = append(names, r.Name)
		}
	}
	return names
}

func (r *Repo) read(name string) ([]byte, error) {
	data, err := tufclient.DirFetcher{Dir: r.dir}.Fetch(context.Background(), name, MaxMetadataBytes)
	if errors.Is(err, tufclient.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return data, err
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// rootVersions lists the N of every metadata/N.root.json, checking that
// the chain has no gap.
func (r *Repo) rootVersions() ([]int64, error) {
	entries, err := os.ReadDir(filepath.Join(r.dir, tuflayout.MetadataDir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a TUF repository (no %s folder); run `ward init` first", r.dir, tuflayout.MetadataDir)
		}
		return nil, err
	}
	var versions []int64
	for _, e := range entries {
		if role, v, ok := tuflayout.ParseVersioned(e.Name()); ok && role == tuflayout.Root {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("%s is not a TUF repository (no 1.root.json); run `ward init` first", r.dir)
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != int64(i+1) {
			return nil, corrupt("root versions are not a chain from 1 (found %v)", versions)
		}
	}
	return versions, nil
}

// load reads and verifies the current repository: the root chain, then
// timestamp → snapshot → targets → environments, each signed to its
// threshold and each version as the role above it says, and each
// environment's bundle file present with its length and hash.
func (r *Repo) load() (*state, error) {
	versions, err := r.rootVersions()
	if err != nil {
		return nil, err
	}
	s := &state{envs: map[string]*metadata.Metadata[metadata.TargetsType]{}}
	for _, v := range versions {
		name := tuflayout.VersionedMetadata(tuflayout.Root, v)
		data, err := r.read(name)
		if err != nil {
			return nil, corrupt("%v", err)
		}
		next, err := metadata.Root().FromBytes(data)
		if err != nil {
			return nil, corrupt("%s: %v", name, err)
		}
		if next.Signed.Version != v {
			return nil, corrupt("%s has version %d", name, next.Signed.Version)
		}
		if s.root != nil {
			if err := s.root.VerifyDelegate(tuflayout.Root, next); err != nil {
				return nil, corrupt("%s is not signed by the threshold of root v%d: %v", name, v-1, err)
			}
		}
		if err := next.VerifyDelegate(tuflayout.Root, next); err != nil {
			return nil, corrupt("%s is not signed by its own threshold: %v", name, err)
		}
		s.root = next
	}

	data, err := r.read(tuflayout.TimestampMetadata)
	if err != nil {
		return nil, corrupt("%v", err)
	}
	if s.timestamp, err = metadata.Timestamp().FromBytes(data); err != nil {
		return nil, corrupt("timestamp.json: %v", err)
	}
	if err := s.root.VerifyDelegate(tuflayout.Timestamp, s.timestamp); err != nil {
		return nil, corrupt("timestamp.json: %v", err)
	}
	snapMeta := s.timestamp.Signed.Meta["snapshot.json"]
	if snapMeta == nil {
		return nil, corrupt("timestamp.json lists no snapshot")
	}
	if s.snapshot, err = loadRole(r, tuflayout.Snapshot, snapMeta, metadata.Snapshot()); err != nil {
		return nil, err
	}
	if err := s.root.VerifyDelegate(tuflayout.Snapshot, s.snapshot); err != nil {
		return nil, corrupt("snapshot: %v", err)
	}
	targetsMeta := s.snapshot.Signed.Meta["targets.json"]
	if targetsMeta == nil {
		return nil, corrupt("snapshot lists no targets")
	}
	if s.targets, err = loadRole(r, tuflayout.Targets, targetsMeta, metadata.Targets()); err != nil {
		return nil, err
	}
	if err := s.root.VerifyDelegate(tuflayout.Targets, s.targets); err != nil {
		return nil, corrupt("targets: %v", err)
	}
	for _, env := range s.envNames() {
		meta := s.snapshot.Signed.Meta[env+".json"]
		if meta == nil {
			return nil, corrupt("snapshot lists no %s role", env)
		}
		md, err := loadRole(r, env, meta, metadata.Targets())
		if err != nil {
			return nil, err
		}
		if err := s.targets.VerifyDelegate(env, md); err != nil {
			return nil, corrupt("%s: %v", env, err)
		}
		for p, tf := range md.Signed.Targets {
			if p != tuflayout.TargetPath(env) {
				return nil, corrupt("role %s lists target %q; it may list only %s", env, p, tuflayout.TargetPath(env))
			}
			if _, err := r.targetBytes(env, tf); err != nil {
				return nil, err
			}
		}
		s.envs[env] = md
	}
	return s, nil
}

// loadRole reads metadata/<version>.<role>.json as meta says and checks the
// version (and length and hashes where meta has them).
func loadRole[T metadata.Roles](r *Repo, role string, meta *metadata.MetaFiles, empty *metadata.Metadata[T]) (*metadata.Metadata[T], error) {
	name := tuflayout.VersionedMetadata(role, meta.Version)
	data, err := r.read(name)
	if err != nil {
		return nil, corrupt("%v", err)
	}
	if err := meta.VerifyLengthHashes(data); err != nil {
		return nil, corrupt("%s: %v", name, err)
	}
	md, err := empty.FromBytes(data)
	if err != nil {
		return nil, corrupt("%s: %v", name, err)
	}
	if v := versionOf(md); v != meta.Version {
		return nil, corrupt("%s has version %d", name, v)
	}
	return md, nil
}

func versionOf[T metadata.Roles](md *metadata.Metadata[T]) int64 {
	switch s := any(&md.Signed).(type) {
	case *metadata.RootType:
		return s.Version
	case *metadata.TargetsType:
		return s.Version
	case *metadata.SnapshotType:
		return s.Version
	case *metadata.TimestampType:
		return s.Version
	}
	return 0
}

// targetBytes reads env's bundle file for tf and checks length and hashes.
func (r *Repo) targetBytes(env string, tf *metadata.TargetFiles) ([]byte, error) {
	sum, ok := tf.Hashes["sha256"]
	if !ok {
		return nil, corrupt("target %s has no sha256", tf.Path)
	}
	name := tuflayout.TargetFile(env, hex.EncodeToString(sum))
	f, err := os.Open(filepath.Join(r.dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, corrupt("bundle file of %s: %v", env, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, tf.Length+1))
	if err != nil {
		return nil, corrupt("bundle file of %s: %v", env, err)
	}
	if err := tf.VerifyLengthHashes(data); err != nil {
		return nil, corrupt("bundle file %s does not match its metadata: %v", name, err)
	}
	return data, nil
}

// sign replaces md's signatures with those of the given signers that are
// keys of the role, and fails unless they reach the threshold.
func sign[T metadata.Roles](md *metadata.Metadata[T], role string, keyIDs []string, threshold int, signers []signature.Signer) error {
	md.ClearSignatures()
	signed := map[string]bool{}
	var foreign []string
	for _, s := range signers {
		_, id, err := keys.TUFKey(s)
		if err != nil {
			return fmt.Errorf("failed to sign %s: %w", role, err)
		}
		if !slices.Contains(keyIDs, id) {
			foreign = append(foreign, short(id))
			continue
		}
		if signed[id] {
			continue
		}
		if _, err := md.Sign(s); err != nil {
			return fmt.Errorf("failed to sign %s with key %s: %w", role, short(id), err)
		}
		signed[id] = true
	}
	if len(signed) < threshold {
		extra := ""
		if len(foreign) > 0 {
			extra = fmt.Sprintf(" (%s not a key of %s)", strings.Join(foreign, ", "), role)
		}
		return fmt.Errorf("%w: role %s needs %d signature(s) from its keys %s, the given keys make %d%s",
			ErrThreshold, role, threshold, shortAll(keyIDs), len(signed), extra)
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func shortAll(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = short(id)
	}
	return "[" + strings.Join(out, " ") + "]"
}

// file is one file of a pending write.
type file struct {
	name string
	data []byte
}

// commit writes files in order, each atomically, creating folders as needed.
// Callers put timestamp.json last.
func (r *Repo) commit(files []file) error {
	for _, f := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("failed to write %s: %w", f.name, err)
		}
		tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+path.Base(f.name))
		if err != nil {
			return fmt.Errorf("failed to write %s: %w", f.name, err)
		}
		_, werr := tmp.Write(f.data)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o644)); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("failed to write %s: %w", f.name, err)
		}
		if err := os.Rename(tmp.Name(), p); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("failed to write %s: %w", f.name, err)
		}
	}
	return nil
}

func encode[T metadata.Roles](md *metadata.Metadata[T]) ([]byte, error) {
	b, err := md.ToBytes(true)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// metaFile describes metadata bytes for snapshot or timestamp: version,
// length and sha256.
func metaFile(version int64, data []byte) *metadata.MetaFiles {
	mf := metadata.MetaFile(version)
	sum := sha256.Sum256(data)
	mf.Length = int64(len(data))
	mf.Hashes = metadata.Hashes{"sha256": sum[:]}
	return mf
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
