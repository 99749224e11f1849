package tufrepo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"ward.dev/ward/bundle/keys"
	"ward.dev/ward/bundle/tuflayout"
)

// CreateOptions describe a new repository. Signers holds the keys of every
// role: root, targets, snapshot, timestamp and each environment in Envs.
// Thresholds default to 1; a role needs at least its threshold of keys.
type CreateOptions struct {
	Envs       []string
	Signers    Signers
	Thresholds map[string]int
}

// Create writes a new repository in the repo's directory: root v1 with
// consistent snapshots, targets v1 delegating "<env>/*" to one role per
// environment (terminating), empty environment roles, snapshot and
// timestamp. It refuses a directory that already holds metadata.
func (r *Repo) Create(opts CreateOptions) error {
	if _, err := os.Stat(filepath.Join(r.dir, tuflayout.MetadataDir)); err == nil {
		return fmt.Errorf("%s already holds a TUF repository", r.dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(opts.Envs) == 0 {
		return fmt.Errorf("a repository needs at least one environment")
	}
	seen := map[string]bool{}
	for _, env := range opts.Envs {
		if err := tuflayout.ValidateEnv(env); err != nil {
			return err
		}
		if seen[env] {
			return fmt.Errorf("environment %q is listed twice", env)
		}
		seen[env] = true
	}
	threshold := func(role string) int {
		if t := opts.Thresholds[role]; t > 0 {
			return t
		}
		return 1
	}
	now := r.now().UTC()

	root := metadata.Root(now.Add(r.expiry.Root))
	root.Signed.ConsistentSnapshot = true
	for _, role := range tuflayout.TopLevelRoles() {
		if err := addKeys(opts.Signers[role], role, threshold(role), func(k *metadata.Key) error { return root.Signed.AddKey(k, role) }); err != nil {
			return err
		}
		root.Signed.Roles[role].Threshold = threshold(role)
	}

	targets := metadata.Targets(now.Add(r.expiry.Targets))
	targets.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	envs := map[string]*metadata.Metadata[metadata.TargetsType]{}
	for _, env := range opts.Envs {
		role := metadata.DelegatedRole{Name: env, Threshold: threshold(env), Terminating: true, Paths: []string{tuflayout.PathPattern(env)}}
		err := addKeys(opts.Signers[env], env, threshold(env), func(k *metadata.Key) error {
			id, err := k.ID()
			if err != nil {
				return err
			}
			targets.Signed.Delegations.Keys[id] = k
			role.KeyIDs = append(role.KeyIDs, id)
			return nil
		})
		if err != nil {
			return err
		}
		targets.Signed.Delegations.Roles = append(targets.Signed.Delegations.Roles, role)
		envs[env] = metadata.Targets(now.Add(r.expiry.Env))
	}

	s := &state{root: root, targets: targets, envs: envs}
	var files []file
	if err := sign(root, tuflayout.Root, root.Signed.Roles[tuflayout.Root].KeyIDs, threshold(tuflayout.Root), opts.Signers[tuflayout.Root]); err != nil {
		return err
	}
	rootBytes, err := encode(root)
	if err != nil {
		return err
	}
	files = append(files, file{tuflayout.VersionedMetadata(tuflayout.Root, 1), rootBytes})
	changed := map[string]bool{tuflayout.Targets: true}
	for _, env := range opts.Envs {
		changed[env] = true
	}
	more, err := r.resign(s, changed, opts.Signers, now)
	if err != nil {
		return err
	}
	return r.commit(append(files, more...))
}

// addKeys adds each signer's public key through add and checks there are
// enough distinct keys for the threshold.
func addKeys(signers []signature.Signer, role string, threshold int, add func(*metadata.Key) error) error {
	ids := map[string]bool{}
	for _, s := range signers {
		k, id, err := keys.TUFKey(s)
		if err != nil {
			return fmt.Errorf("failed to add a key to %s: %w", role, err)
		}
		if ids[id] {
			continue
		}
		ids[id] = true
		if err := add(k); err != nil {
			return fmt.Errorf("failed to add key %s to %s: %w", short(id), role, err)
		}
	}
	if len(ids) < threshold {
		return fmt.Errorf("%w: role %s has threshold %d but %d distinct key(s)", ErrThreshold, role, threshold, len(ids))
	}
	return nil
}
