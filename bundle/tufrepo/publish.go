package tufrepo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"ward.dev/ward/bundle"
	"ward.dev/ward/bundle/tuflayout"
)

// Release is an environment's bundle as its role lists it.
type Release struct {
	// Env is the environment.
	Env string `json:"env"`
	// Version is the bundle version in Env.
	Version int64 `json:"version"`
	// Digest is "sha256:<hex>" of the bundle bytes.
	Digest string `json:"digest"`
	// Length is the bundle's size in bytes.
	Length int64 `json:"length"`
	// Commit and Repository say where the bundle was built from.
	Commit     string `json:"commit,omitempty"`
	Repository string `json:"repository,omitempty"`
	// PromotedFrom is set for a promoted bundle.
	PromotedFrom *tuflayout.Origin `json:"promotedFrom,omitempty"`
	// RestoredFrom is set for a rollback.
	RestoredFrom int64 `json:"restoredFrom,omitempty"`
	// RoleVersion is the version of the environment's role metadata.
	RoleVersion int64 `json:"roleVersion"`
	// Expires is when the environment's role metadata expires.
	Expires time.Time `json:"expires"`
	// Unchanged is true when the operation found the bundle already current
	// and signed nothing.
	Unchanged bool `json:"unchanged,omitempty"`
}

func releaseOf(env string, md *metadata.Metadata[metadata.TargetsType]) (*Release, *metadata.TargetFiles, error) {
	tf := md.Signed.Targets[tuflayout.TargetPath(env)]
	if tf == nil {
		return nil, nil, nil
	}
	c, err := tuflayout.ParseCustom(tf.Custom)
	if err != nil {
		return nil, nil, corrupt("role %s v%d: %v", env, md.Signed.Version, err)
	}
	return &Release{
		Env: env, Version: c.Version, Digest: "sha256:" + hex.EncodeToString(tf.Hashes["sha256"]), Length: tf.Length,
		Commit: c.Commit, Repository: c.Repository, PromotedFrom: c.PromotedFrom, RestoredFrom: c.RestoredFrom,
		RoleVersion: md.Signed.Version, Expires: md.Signed.Expires,
	}, tf, nil
}

// Current returns env's current release, or nil when it has none yet.
func (r *Repo) Current(env string) (*Release, error) {
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	if _, err := s.envRole(env); err != nil {
		return nil, err
	}
	rel, _, err := releaseOf(env, s.envs[env])
	return rel, err
}

// CheckEnvs loads and verifies the repository once and fails with
// ErrUnknownEnv unless it has a role for every environment named.
func (r *Repo) CheckEnvs(envs ...string) error {
	s, err := r.load()
	if err != nil {
		return err
	}
	for _, env := range envs {
		if _, err := s.envRole(env); err != nil {
			return err
		}
	}
	return nil
}

// Envs lists the repository's environments in delegation order.
func (r *Repo) Envs() ([]string, error) {
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	return s.envNames(), nil
}

// Publish signs data as env's next bundle version. The bundle is read
// first and refused if broken; its manifest gives the commit and
// repository. Publishing the bundle env already serves signs nothing, and
// so does a bundle of the same policy files built at a later commit (one
// that changed only other files, such as the TUF repository CI commits
// back): a new version would change nothing that is enforced.
func (r *Repo) Publish(env string, data []byte, signers Signers) (*Release, error) {
	contents, err := bundle.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("failed to publish to %s: %w", env, err)
	}
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	if _, err := s.envRole(env); err != nil {
		return nil, err
	}
	cur, tf, err := releaseOf(env, s.envs[env])
	if err != nil {
		return nil, err
	}
	if cur != nil && (cur.Digest == contents.Digest || r.samePolicies(env, tf, contents.Manifest)) {
		cur.Unchanged = true
		return cur, nil
	}
	custom := tuflayout.Custom{Version: 1, Commit: contents.Manifest.Source.Commit, Repository: contents.Manifest.Source.Repository}
	if cur != nil {
		custom.Version = cur.Version + 1
	}
	return r.release(s, env, data, custom, signers)
}

// samePolicies reports whether env's current bundle holds exactly the
// policy files of m (paths and hashes). A current bundle that cannot be
// read is not the same.
func (r *Repo) samePolicies(env string, tf *metadata.TargetFiles, m bundle.Manifest) bool {
	data, err := r.targetBytes(env, tf)
	if err != nil {
		return false
	}
	cur, err := bundle.Read(bytes.NewReader(data))
	if err != nil {
		return false
	}
	return cur.Manifest.Source.Path == m.Source.Path && slices.Equal(cur.Manifest.Policies, m.Policies)
}

// Promote makes to's next bundle version the bundle from currently serves:
// the same bytes and hash, nothing rebuilt. The from bundle is checked
// against its signed metadata first.
func (r *Repo) Promote(from, to string, signers Signers) (*Release, error) {
	if from == to {
		return nil, fmt.Errorf("cannot promote %s to itself", from)
	}
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	for _, env := range []string{from, to} {
		if _, err := s.envRole(env); err != nil {
			return nil, err
		}
	}
	src, tf, err := releaseOf(from, s.envs[from])
	if err != nil {
		return nil, err
	}
	if src == nil {
		return nil, envMissing(from)
	}
	data, err := r.targetBytes(from, tf)
	if err != nil {
		return nil, err
	}
	cur, _, err := releaseOf(to, s.envs[to])
	if err != nil {
		return nil, err
	}
	if cur != nil && cur.Digest == src.Digest {
		cur.Unchanged = true
		return cur, nil
	}
	custom := tuflayout.Custom{Version: 1, Commit: src.Commit, Repository: src.Repository,
		PromotedFrom: &tuflayout.Origin{Env: from, Version: src.Version}}
	if cur != nil {
		custom.Version = cur.Version + 1
	}
	return r.release(s, to, data, custom, signers)
}

// Rollback re-signs the bundle that was env's version toVersion as env's
// next, higher version. The earlier role metadata must still verify under
// the environment's current keys.
func (r *Repo) Rollback(env string, toVersion int64, signers Signers) (*Release, error) {
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	if _, err := s.envRole(env); err != nil {
		return nil, err
	}
	cur, _, err := releaseOf(env, s.envs[env])
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, envMissing(env)
	}
	if toVersion >= cur.Version || toVersion < 1 {
		return nil, fmt.Errorf("cannot roll %s back to version %d: the current version is %d; pick an earlier one (ward history --env %s)", env, toVersion, cur.Version, env)
	}
	old, tf, err := r.findVersion(s, env, toVersion)
	if err != nil {
		return nil, err
	}
	data, err := r.targetBytes(env, tf)
	if err != nil {
		return nil, err
	}
	custom := tuflayout.Custom{Version: cur.Version + 1, Commit: old.Commit, Repository: old.Repository, RestoredFrom: toVersion}
	return r.release(s, env, data, custom, signers)
}

// History lists env's releases found in the repository's metadata, oldest
// first. Role metadata that no longer verifies under the environment's
// current keys is left out.
func (r *Repo) History(env string) ([]Release, error) {
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	if _, err := s.envRole(env); err != nil {
		return nil, err
	}
	var out []Release
	for v := int64(1); v <= s.envs[env].Signed.Version; v++ {
		md, err := r.envVersion(s, env, v)
		if err != nil {
			continue
		}
		rel, _, err := releaseOf(env, md)
		if err != nil || rel == nil {
			continue
		}
		if len(out) > 0 && out[len(out)-1].Version == rel.Version {
			continue
		}
		out = append(out, *rel)
	}
	return out, nil
}

// findVersion finds the role metadata of env that listed bundle version v.
func (r *Repo) findVersion(s *state, env string, v int64) (*Release, *metadata.TargetFiles, error) {
	for rv := s.envs[env].Signed.Version; rv >= 1; rv-- {
		md, err := r.envVersion(s, env, rv)
		if err != nil {
			continue
		}
		rel, tf, err := releaseOf(env, md)
		if err != nil || rel == nil {
			continue
		}
		if rel.Version == v {
			return rel, tf, nil
		}
		if rel.Version < v {
			break
		}
	}
	return nil, nil, fmt.Errorf("no verifiable metadata of %s lists bundle version %d", env, v)
}

// envVersion reads metadata/<rv>.<env>.json and verifies it under the
// environment's current delegation.
func (r *Repo) envVersion(s *state, env string, rv int64) (*metadata.Metadata[metadata.TargetsType], error) {
	data, err := r.read(tuflayout.VersionedMetadata(env, rv))
	if err != nil {
		return nil, err
	}
	md, err := metadata.Targets().FromBytes(data)
	if err != nil {
		return nil, err
	}
	if err := s.targets.VerifyDelegate(env, md); err != nil {
		return nil, err
	}
	return md, nil
}

// release signs env's next role listing data with custom, stores data
// under its hash (a no-op when the same bytes are there already), and
// re-signs snapshot and timestamp.
func (r *Repo) release(s *state, env string, data []byte, custom tuflayout.Custom, signers Signers) (*Release, error) {
	now := r.now().UTC()
	tf, err := metadata.TargetFile().FromBytes(tuflayout.TargetPath(env), data, "sha256")
	if err != nil {
		return nil, err
	}
	if tf.Custom, err = custom.Raw(); err != nil {
		return nil, err
	}
	s.envs[env] = r.nextEnv(s, env, tf, now)
	files, err := r.resign(s, map[string]bool{env: true}, signers, now)
	if err != nil {
		return nil, fmt.Errorf("failed to sign %s: %w", env, err)
	}
	sum := sha256.Sum256(data)
	target := tuflayout.TargetFile(env, hex.EncodeToString(sum[:]))
	if existing, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(target))); err != nil || !bytes.Equal(existing, data) {
		files = append([]file{{target, data}}, files...)
	}
	if err := r.commit(files); err != nil {
		return nil, err
	}
	rel, _, err := releaseOf(env, s.envs[env])
	return rel, err
}
